"""Benchmark the local model serving: each figure side by side with its baseline, one run.

(a) overhead: p50/p95 of one generation through the SageMaker emulator over HTTP (boto3 ->
    emulator -> worker -> `predict_fn`) against calling `predict_fn` in-process on the same
    artifact and input. Goal: <= 10% at p50.
(b) throughput: requests/s and p95 latency at 1, 4, 8 and 16 concurrent clients, emulator
    (one worker per variant, dynamic batching, KV cache) against a naive server: Hugging Face
    `pipeline("text-generation")` behind a plain `http.server` answering one request at a time.
    Goal: >= 2x the baseline's req/s at 8 clients.
(c) classifier runtime: ONNX Runtime against PyTorch at batch 1 and 16 on the same artifact,
    with identical predictions checked. Goal: >= 2.5x at batch 1.

Runs on the `full` artifacts when they are built, else `smoke` (the table says which). Prints
rich tables and writes them to BENCHMARKS.md between this benchmark's markers.

    .venv/bin/python -m benchmarks.serving [--profile full|smoke] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from benchmarks import results
from local.emulate.sagemaker import Emulator
from local.emulate.sagemaker.endpoints import endpoint_specs, load_local_stacks
from local.emulate.sagemaker.worker import load_inference_module
from local.paths import DEFAULT_MODELS_ROOT

GENERATOR = "headline-base"
REALTIME = {"HostingMode": "realtime"}
CLASSIFIER = "news-classifier"
# Greedy decoding so both sides of each comparison do exactly the same work.
GENERATION_PARAMETERS = {"max_new_tokens": 16, "do_sample": False}
PROMPTS = [
    "Government announces",
    "Stocks fall as",
    "Film star",
    "Football club signs",
    "New smartphone",
    "Scientists discover",
    "Minister resigns after",
    "Record profits for",
]
HEADLINES = [
    "Chancellor unveils spending plans for schools",
    "Striker scores twice as champions win again",
    "Chipmaker shares jump on strong demand",
    "Oscar nominations announced for new drama",
] * 4
OVERHEAD_CALLS = 30
CONCURRENCY_LEVELS = (1, 4, 8, 16)
REQUESTS_PER_CLIENT = 2
MIN_REQUESTS_PER_LEVEL = 16
# batch -> (recorded calls per contender, calls in a row per block)
CLASSIFIER_CALLS = {1: (240, 40), 16: (60, 10)}

THROUGHPUT_HEADERS = [
    "clients",
    "naive req/s",
    "naive p95 ms",
    "emulator req/s",
    "emulator p95 ms",
    "speed-up",
]

console = Console()


@dataclass(frozen=True)
class Latencies:
    """Seconds per call."""

    samples: list[float]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000


def timed(
    calls: Mapping[str, Callable[[], Any]],
    count: int,
    label: str,
    progress: Progress,
    *,
    block: int = 1,
) -> dict[str, Latencies]:
    """`count` latencies of each call, measured in alternating rounds so that every side of a
    comparison sees the same machine load (this machine is shared, and its load drifts).

    Each round runs every call `block` times in a row. Calls into runtimes that keep their own
    thread pools (PyTorch, ONNX Runtime) need blocks, each started by one unrecorded call:
    interleaved call by call, one runtime's pool is still awake when the other starts, and both
    slow down (PyTorch at 2 threads measured 22 ms that way, 4.7 ms in blocks)."""
    for call in calls.values():
        for _ in range(3):  # warm-up: first-call allocations and lazy imports are not steady
            call()
    task = progress.add_task(label, total=count)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(math.ceil(count / block)):
        for name, call in calls.items():
            if block > 1:
                call()  # lets the previous runtime's threads go idle
            for _ in range(block):
                started = time.perf_counter()
                call()
                samples[name].append(time.perf_counter() - started)
        progress.advance(task, block)
    return {name: Latencies(values) for name, values in samples.items()}


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def pick_profile(requested: str | None, *model_names: str) -> str:
    """`requested`, else `full` when every one of `model_names` is built there, else `smoke`."""
    if requested:
        return requested
    full = DEFAULT_MODELS_ROOT / "full"
    built = all((full / name / "model" / "config.json").is_file() for name in model_names)
    return "full" if built else "smoke"


def realtime_generator_endpoint(profile: str) -> str:
    """The endpoint that serves variant A in realtime mode, per the templates."""
    stacks = load_local_stacks(profile, DEFAULT_MODELS_ROOT, None, REALTIME)
    specs = endpoint_specs(stacks, profile, DEFAULT_MODELS_ROOT)
    return next(s.name for s in specs if any(v.model_name == GENERATOR for v in s.variants))


# ---- (a) overhead -------------------------------------------------------------------------


def bench_overhead(
    emulator: Emulator, endpoint: str, model_dir: Path, progress: Progress
) -> list[list[str]]:
    import torch

    # The same thread budget as the worker, so only the serving path differs.
    torch.set_num_threads(emulator.threads_per_worker)
    body = {"inputs": PROMPTS[0], "parameters": GENERATION_PARAMETERS}
    inference = load_inference_module(model_dir)
    model = inference.model_fn(str(model_dir))
    runtime = emulator.client()
    payload = json.dumps(body)

    def over_http() -> None:
        runtime.invoke_endpoint(
            EndpointName=endpoint, TargetVariant="A", ContentType="application/json", Body=payload
        )["Body"].read()

    measured = timed(
        {"direct": lambda: inference.predict_fn(body, model), "served": over_http},
        OVERHEAD_CALLS,
        "predict_fn in-process / over HTTP",
        progress,
    )
    direct, served = measured["direct"], measured["served"]
    overhead = (served.p50_ms - direct.p50_ms) / direct.p50_ms * 100
    return [
        ["predict_fn in-process (baseline)", f"{direct.p50_ms:.1f}", f"{direct.p95_ms:.1f}", "—"],
        [
            "boto3 → emulator → worker",
            f"{served.p50_ms:.1f}",
            f"{served.p95_ms:.1f}",
            f"{overhead:+.1f}% (goal ≤ 10%)",
        ],
    ]


# ---- (b) throughput -----------------------------------------------------------------------


class _NaiveHandler(BaseHTTPRequestHandler):
    """POST a SageMaker-style JSON body, get `[{"generated_text"}]`; one request at a time."""

    pipe: Any = None

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length))
        parameters = request.get("parameters", {})
        outputs = self.pipe(request["inputs"], **parameters)
        body = json.dumps([{"generated_text": outputs[0]["generated_text"]}]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _NaiveServer(HTTPServer):
    # Still one request at a time; the deeper accept queue only keeps waiting clients connected.
    request_queue_size = 64


def run_naive_server(model_dir: str, threads: int, ports: Any) -> None:
    """The baseline, in its own process like a real server: HF pipeline + http.server, with
    the same torch thread budget as an emulator worker so that only the serving differs."""
    import torch
    from transformers import pipeline

    torch.set_num_threads(threads)
    _NaiveHandler.pipe = pipeline(
        "text-generation", model=model_dir, tokenizer=model_dir, device="cpu"
    )
    server = _NaiveServer(("127.0.0.1", 0), _NaiveHandler)
    ports.put(server.server_address[1])
    server.serve_forever()


def load_test(
    send: Callable[[str], None], clients: int, label: str, progress: Progress
) -> tuple[float, Latencies]:
    """`clients` threads each send REQUESTS_PER_CLIENT (at least MIN_REQUESTS_PER_LEVEL in all)."""
    per_client = max(REQUESTS_PER_CLIENT, -(-MIN_REQUESTS_PER_LEVEL // clients))
    task = progress.add_task(label, total=clients * per_client)
    samples: list[float] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        for request in range(per_client):
            started = time.perf_counter()
            send(PROMPTS[(index + request) % len(PROMPTS)])
            with lock:
                samples.append(time.perf_counter() - started)
            progress.advance(task)

    send(PROMPTS[0])  # warm-up
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, range(clients)))
    elapsed = time.perf_counter() - started
    return len(samples) / elapsed, Latencies(samples)


def bench_throughput(
    emulator: Emulator, endpoint: str, model_dir: Path, progress: Progress
) -> list[list[str]]:
    local = threading.local()

    def via_emulator(prompt: str) -> None:
        if not hasattr(local, "runtime"):
            local.runtime = emulator.client(max_pool_connections=32, read_timeout=300)
        local.runtime.invoke_endpoint(
            EndpointName=endpoint,
            TargetVariant="A",
            ContentType="application/json",
            Body=json.dumps({"inputs": prompt, "parameters": GENERATION_PARAMETERS}),
        )["Body"].read()

    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    naive = context.Process(
        target=run_naive_server,
        args=(str(model_dir), emulator.threads_per_worker, ports),
        daemon=True,
    )
    naive.start()
    try:
        naive_url = f"http://127.0.0.1:{ports.get(timeout=600)}/"
        http = httpx.Client(timeout=600, limits=httpx.Limits(max_connections=32))

        def via_naive(prompt: str) -> None:
            http.post(
                naive_url, json={"inputs": prompt, "parameters": GENERATION_PARAMETERS}
            ).raise_for_status()

        rows = []
        for clients in CONCURRENCY_LEVELS:
            naive_rps, naive_latency = load_test(
                via_naive, clients, f"naive server, {clients} clients", progress
            )
            served_rps, served_latency = load_test(
                via_emulator, clients, f"emulator, {clients} clients", progress
            )
            speedup = served_rps / naive_rps
            goal = " (goal ≥ 2x)" if clients == 8 else ""
            rows.append(
                [
                    str(clients),
                    f"{naive_rps:.2f}",
                    f"{naive_latency.p95_ms:.0f}",
                    f"{served_rps:.2f}",
                    f"{served_latency.p95_ms:.0f}",
                    f"{speedup:.2f}x{goal}",
                ]
            )
        http.close()
        return rows
    finally:
        naive.terminate()
        naive.join(timeout=10)


# ---- (c) classifier runtime ---------------------------------------------------------------


CLASSIFIER_GOAL = 2.5  # ONNX Runtime over PyTorch at batch 1


def classifier_headers() -> list[str]:
    threads = torch_threads()
    return [
        "batch",
        f"PyTorch ms ({threads} threads)",
        f"ONNX Runtime ms ({threads} threads)",
        "speed-up",
        "PyTorch ms (1 thread)",
        "ONNX Runtime ms (1 thread)",
        "speed-up (1 thread)",
        "speed-up, best vs best",
        "same predictions",
    ]


def bench_classifier(model_dir: Path, progress: Progress) -> list[list[str]]:
    """Both runtimes through inference.py's `classify` (tokenisation and softmax included), at
    the host's torch thread count (which inference.py gives ONNX Runtime too) and at 1 thread."""
    inference = load_inference_module(model_dir)
    if not (model_dir / inference.ONNX_FILE).is_file():
        return [["(no model.onnx in the artifact)", *["—"] * (len(classifier_headers()) - 1)]]
    import torch

    threads = torch_threads()
    onnx = inference.load_model(model_dir, prefer_onnx=True)
    torch_model = inference.load_model(model_dir, prefer_onnx=False)
    # inference.py sizes ONNX Runtime's thread pool from torch's thread count at load time.
    torch.set_num_threads(1)
    onnx_1 = inference.load_model(model_dir, prefer_onnx=True)
    torch.set_num_threads(threads)

    def pytorch_with(count: int, texts: list[str]) -> Callable[[], Any]:
        def call() -> Any:
            torch.set_num_threads(count)
            return inference.classify(torch_model, texts)

        return call

    rows = []
    for batch, (calls, block) in CLASSIFIER_CALLS.items():
        texts = HEADLINES[:batch]
        same = _same_predictions(
            inference.classify(onnx, texts), inference.classify(torch_model, texts)
        )
        measured = timed(
            {
                "pytorch": pytorch_with(threads, texts),
                "onnx": lambda texts=texts: inference.classify(onnx, texts),
                "pytorch-1": pytorch_with(1, texts),
                "onnx-1": lambda texts=texts: inference.classify(onnx_1, texts),
            },
            calls,
            f"PyTorch / ONNX Runtime, batch {batch}",
            progress,
            block=block,
        )
        p50 = {name: latencies.p50_ms for name, latencies in measured.items()}
        best = min(p50["pytorch"], p50["pytorch-1"]) / min(p50["onnx"], p50["onnx-1"])
        verdict = "met" if best >= CLASSIFIER_GOAL else "NOT met"
        goal = f" (goal ≥ {CLASSIFIER_GOAL}x: {verdict})" if batch == 1 else ""
        rows.append(
            [
                str(batch),
                f"{p50['pytorch']:.2f}",
                f"{p50['onnx']:.2f}",
                f"{p50['pytorch'] / p50['onnx']:.2f}x",
                f"{p50['pytorch-1']:.2f}",
                f"{p50['onnx-1']:.2f}",
                f"{p50['pytorch-1'] / p50['onnx-1']:.2f}x",
                f"{best:.2f}x{goal}",
                "yes" if same else "NO",
            ]
        )
    torch.set_num_threads(threads)
    return rows


def _same_predictions(left: list[dict[str, Any]], right: list[dict[str, Any]]) -> bool:
    return all(
        a["label"] == b["label"] and abs(a["score"] - b["score"]) < 1e-4
        for a, b in zip(left, right, strict=True)
    )


# ---- report -------------------------------------------------------------------------------


def render(title: str, headers: list[str], rows: list[list[str]]) -> tuple[Table, list[str]]:
    table = Table(title=title)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    markdown = [f"| {' | '.join(headers)} |", f"|{'---|' * len(headers)}"]
    markdown += [f"| {' | '.join(row)} |" for row in rows]
    return table, [f"**{title}**", "", *markdown, ""]


def write_section(profiles: Mapping[str, str], blocks: list[str]) -> None:
    body = "\n".join(
        [
            "## Model serving (`make bench` → `python -m benchmarks.serving`)",
            "",
            "Artifacts: "
            + ", ".join(f"`{name}` **{profile}** profile" for name, profile in profiles.items())
            + f". Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
            f" on {platform.machine()} with {os.cpu_count()} CPU cores"
            f" (1-minute load average {os.getloadavg()[0]:.1f} when written),"
            f" Python {platform.python_version()}. Generation: greedy,"
            f" {GENERATION_PARAMETERS['max_new_tokens']} new tokens, `{GENERATOR}` (variant A).",
            "",
            *blocks,
        ]
    )
    console.print(f"wrote {results.write_section('serving', body)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--profile", choices=["full", "smoke"], help="default: full if built, else smoke"
    )
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()
    # The generator endpoint serves both variants, so it needs both generators built.
    generator_profile = pick_profile(args.profile, GENERATOR, "headline-lite")
    classifier_profile = pick_profile(args.profile, CLASSIFIER)
    profiles = {GENERATOR: generator_profile, CLASSIFIER: classifier_profile}
    console.print(f"[bold]serving benchmarks on the artifacts {profiles}[/]")
    generator_dir = DEFAULT_MODELS_ROOT / generator_profile / GENERATOR / "model"
    classifier_dir = DEFAULT_MODELS_ROOT / classifier_profile / CLASSIFIER / "model"

    sections: dict[str, list[str]] = {}

    def report(key: str, title: str, headers: list[str], rows: list[list[str]]) -> None:
        table, markdown = render(title, headers, rows)
        console.print(table)
        sections[key] = markdown

    with Progress(console=console, transient=True) as progress:
        # The classifier runs first, before the emulator's workers take their share of the CPU.
        report(
            "c",
            f"(c) Classifier runtime ({CLASSIFIER}), p50 per call, in alternating blocks",
            classifier_headers(),
            bench_classifier(classifier_dir, progress),
        )
        endpoint = realtime_generator_endpoint(generator_profile)
        with Emulator(
            generator_profile,
            parameter_overrides=REALTIME,
            seed=1,
            only_endpoints=[endpoint],  # the classifier's profile may differ; it is not needed
        ) as emulator:
            report(
                "a",
                "(a) Serving overhead, one request at a time, calls alternated "
                f"({emulator.threads_per_worker} torch thread(s) on both sides)",
                ["path", "p50 ms", "p95 ms", "overhead at p50"],
                bench_overhead(emulator, endpoint, generator_dir, progress),
            )
            report(
                "b",
                "(b) Throughput under concurrent clients "
                f"({emulator.threads_per_worker} torch thread(s) per server)",
                THROUGHPUT_HEADERS,
                bench_throughput(emulator, endpoint, generator_dir, progress),
            )
    blocks = [line for key in sorted(sections) for line in sections[key]]
    if not args.no_write:
        write_section(profiles, blocks)


if __name__ == "__main__":
    main()
