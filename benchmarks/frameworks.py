"""Throughput against LitServe: Pressroom's SageMaker emulator and LitServe 0.2.19 serving the
same generator artifact through the same code/inference.py hooks, side by side in one run.

Both sides get one model process with one torch thread. LitServe runs with dynamic batching
(max batch 16, 25 ms window): a batch's requests that share parameters run as one `predict_fn`
call. Pressroom's worker batches continuously: a request joins the running decode batch at the
next step. Clients are closed loops (each sends its next request when the last one returns),
greedy decoding, 16 new tokens. Goals: at 8 clients >= 1.5x LitServe's requests/s, at 1 client
at least equal. LitServe lives in its own virtualenv (`.venv-litserve`), never the project's.

    make bench-frameworks   (or .venv/bin/python -m benchmarks.frameworks [--profile full|smoke])
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress

from benchmarks import results
from benchmarks.serving import REALTIME, Latencies, pick_profile, realtime_endpoint, render
from local.emulate.sagemaker import Emulator
from local.paths import BUILD_DIR, DEFAULT_MODELS_ROOT, REPO_ROOT
from tests.fixtures.postgres import free_port

GENERATOR = "headline-base"
# Greedy decoding so both sides do exactly the same work.
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
LITSERVE_PYTHON = REPO_ROOT / ".venv-litserve" / "bin" / "python"
LITSERVE_SERVER = Path(__file__).with_name("litserve_server.py")
THREADS = 1
# clients -> requests each client sends (enough for the batch to reach its steady state)
REQUESTS = {1: 12, 8: 8}
GOALS = {1: 1.0, 8: 1.5}
HEADERS = [
    "clients",
    "LitServe req/s",
    "LitServe p50 / p95 ms",
    "Pressroom req/s",
    "Pressroom p50 / p95 ms",
    "Pressroom / LitServe",
    "goal",
]

console = Console()
Send = Callable[[str], None]


@contextmanager
def litserve(model_dir: Path) -> Iterator[str]:
    """LitServe on 127.0.0.1 serving `model_dir`; yields its /predict URL once it is healthy."""
    if not LITSERVE_PYTHON.is_file():
        raise SystemExit(f"{LITSERVE_PYTHON} is missing: run `make bench-frameworks`")
    port = free_port()
    log = BUILD_DIR / "logs" / "litserve.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        server = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
            [
                str(LITSERVE_PYTHON),
                str(LITSERVE_SERVER),
                f"--model-dir={model_dir}",
                f"--port={port}",
                f"--threads={THREADS}",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": str(THREADS)},
            start_new_session=True,  # LitServe spawns its workers: stop the whole group
        )
    try:
        deadline = time.monotonic() + 600
        while True:
            if server.poll() is not None:
                raise SystemExit(f"LitServe exited with {server.returncode}; see {log}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).text == "ok":
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"LitServe did not become healthy in 600 s; see {log}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/predict"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def closed_loop(
    send: Send, clients: int, label: str, progress: Progress
) -> tuple[float, Latencies]:
    """`clients` threads, each sending REQUESTS[clients] requests one after the other."""
    count = REQUESTS[clients]
    task = progress.add_task(label, total=clients * count)
    samples: list[float] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        for request in range(count):
            started = time.perf_counter()
            send(PROMPTS[(index + request) % len(PROMPTS)])
            with lock:
                samples.append(time.perf_counter() - started)
            progress.advance(task)

    send(PROMPTS[0])  # warm-up
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, range(clients)))
    return len(samples) / (time.perf_counter() - started), Latencies(samples)


def compare(via_litserve: Send, via_pressroom: Send, progress: Progress) -> list[list[str]]:
    rows = []
    for clients, goal in GOALS.items():
        litserve_rps, litserve_latency = closed_loop(
            via_litserve, clients, f"LitServe, {clients} client(s)", progress
        )
        pressroom_rps, pressroom_latency = closed_loop(
            via_pressroom, clients, f"Pressroom, {clients} client(s)", progress
        )
        ratio = pressroom_rps / litserve_rps
        rows.append(
            [
                str(clients),
                f"{litserve_rps:.2f}",
                f"{litserve_latency.p50_ms:.0f} / {litserve_latency.p95_ms:.0f}",
                f"{pressroom_rps:.2f}",
                f"{pressroom_latency.p50_ms:.0f} / {pressroom_latency.p95_ms:.0f}",
                f"{ratio:.2f}x",
                f"{'met' if ratio >= goal else 'NOT met'} (≥ {goal:g}x)",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--profile", choices=["full", "smoke"])
    parser.add_argument("--models-root", type=Path, default=DEFAULT_MODELS_ROOT)
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()
    root = args.models_root
    profile = pick_profile(args.profile, root, GENERATOR, "headline-lite")
    model_dir = root / profile / GENERATOR / "model"
    endpoint = realtime_endpoint(profile, root, GENERATOR)
    body = {"parameters": GENERATION_PARAMETERS}
    local = threading.local()
    with (
        Progress(console=console, transient=True) as progress,
        litserve(model_dir) as litserve_url,
        Emulator(
            profile,
            models_root=root,
            parameter_overrides=REALTIME,
            only_endpoints=[endpoint],
            threads_per_worker=THREADS,
        ) as emulator,
        httpx.Client(timeout=600, limits=httpx.Limits(max_connections=32)) as http,
    ):

        def via_litserve(prompt: str) -> None:
            http.post(litserve_url, json={**body, "inputs": prompt}).raise_for_status()

        def via_pressroom(prompt: str) -> None:
            if not hasattr(local, "runtime"):
                local.runtime = emulator.client(max_pool_connections=32, read_timeout=600)
            local.runtime.invoke_endpoint(
                EndpointName=endpoint,
                TargetVariant="A",
                ContentType="application/json",
                Body=json.dumps({**body, "inputs": prompt}),
            )["Body"].read()

        rows = compare(via_litserve, via_pressroom, progress)
    title = (
        f"Throughput against LitServe 0.2.19 ({GENERATOR}, {profile} profile, "
        f"{THREADS} torch thread per side, greedy, "
        f"{GENERATION_PARAMETERS['max_new_tokens']} new tokens)"
    )
    table, markdown = render(title, HEADERS, rows)
    console.print(table)
    if not args.no_write:
        write_section(markdown)


def write_section(markdown: list[str]) -> None:
    body = "\n".join(
        [
            "## Serving frameworks (`make bench-frameworks` → `python -m benchmarks.frameworks`)",
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} with "
            f"{os.cpu_count()} CPU cores (1-minute load average {os.getloadavg()[0]:.1f} when "
            "written). Pressroom: boto3 `invoke_endpoint` → emulator → worker (continuous "
            "batching). LitServe: `POST /predict` → LitServe (dynamic batching, max batch 16, "
            "25 ms window) → the same `predict_fn`. Closed-loop clients; each level runs "
            "LitServe first, then Pressroom.",
            "",
            *markdown,
        ]
    )
    console.print(f"wrote {results.write_section('frameworks', body)}")


if __name__ == "__main__":
    main()
