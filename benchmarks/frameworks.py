"""Throughput against LitServe: three servers of the same generator artifact side by side in one
run, at 1 and 8 closed-loop clients (greedy, 16 new tokens, the same prompts):

- Pressroom: the SageMaker emulator serving the artifact; its worker runs generator requests
  one at a time on the artifact's ONNX Runtime GenAI engine (one thread, no merging: the
  hooks' `merges_requests` says a generator does not gain from it);
- LitServe + hooks: LitServe 0.2.19 serving the same code/inference.py hooks, with dynamic
  batching (max batch 16, 25 ms window): a batch's requests that share parameters run as one
  `predict_fn` call, whose prompts the engine decodes one after another;
- LitServe + transformers `generate`: the server a user would write in an afternoon, with the
  same batching: the artifact's fp32 weights on `transformers`, each batch left-padded after
  the same headline context and decoded greedily by one `generate` call.

Every server gets one model process with one torch thread. Clients are closed loops (each sends
its next request when the last one returns). Goals: at 8 clients Pressroom >= 1.5x LitServe +
hooks and >= 4x LitServe + transformers in requests/s; at 1 client >= 1.0x LitServe + hooks.
LitServe lives in its own virtualenv (`.venv-litserve`), never the project's.

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
# Greedy decoding so every server does the same work.
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
LITSERVE_REQUIREMENTS = REPO_ROOT / "requirements" / "litserve.txt"
THREADS = 1
HEALTHY_WITHIN_S = 600
# clients -> requests each client sends (enough for the batch to reach its steady state)
REQUESTS = {1: 12, 8: 8}
HOOKS = "LitServe + hooks"
PLAIN = "LitServe + transformers generate"
PRESSROOM = "Pressroom"
# clients -> server -> the least Pressroom's requests/s may be, as a multiple of the server's
GOALS: dict[int, dict[str, float]] = {1: {HOOKS: 1.0}, 8: {HOOKS: 1.5, PLAIN: 4.0}}
HEADERS = ["clients", "server", "req/s", "p50 / p95 ms", "Pressroom / server", "goal"]

console = Console()
Send = Callable[[str], str]
"""Sends one prompt; returns the generated text."""


def pinned(package: str) -> str:
    """The version requirements/litserve.txt pins for `package`."""
    for line in LITSERVE_REQUIREMENTS.read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package:
            return version.strip()
    return "?"


@contextmanager
def litserve(model_dir: Path, *, plain_transformers: bool = False) -> Iterator[str]:
    """LitServe on 127.0.0.1 serving `model_dir` through its hooks (or, `plain_transformers`,
    transformers `generate` on its weights); yields its /predict URL once it is healthy."""
    if not LITSERVE_PYTHON.is_file():
        raise SystemExit(f"{LITSERVE_PYTHON} is missing: run `make bench-frameworks`")
    port = free_port()
    mode = "transformers" if plain_transformers else "hooks"
    log = BUILD_DIR / "logs" / f"litserve-{mode}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        server = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
            [
                str(LITSERVE_PYTHON),
                str(LITSERVE_SERVER),
                f"--model-dir={model_dir}",
                f"--port={port}",
                f"--threads={THREADS}",
                *(["--plain-transformers"] if plain_transformers else []),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": str(THREADS)},
            start_new_session=True,  # LitServe spawns its workers: stop the whole group
        )
    try:
        deadline = time.monotonic() + HEALTHY_WITHIN_S
        while True:
            if server.poll() is not None:
                raise SystemExit(f"LitServe ({mode}) exited with {server.returncode}; see {log}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).text == "ok":
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"LitServe ({mode}) did not become healthy in {HEALTHY_WITHIN_S} s; see {log}"
                )
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/predict"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def generated_text(answer: object) -> str:
    """The text of a `[{"generated_text": str}]` answer, as every server sends it."""
    if (
        isinstance(answer, list)
        and len(answer) == 1
        and isinstance(answer[0], dict)
        and isinstance(answer[0].get("generated_text"), str)
    ):
        return str(answer[0]["generated_text"])
    raise SystemExit(f"unexpected answer: {answer!r}")


def check(servers: dict[str, Send]) -> None:
    """Each server answers the first prompt with a headline that starts with it."""
    for name, send in servers.items():
        text = send(PROMPTS[0])
        if not text.startswith(PROMPTS[0]):
            raise SystemExit(f"{name} answered {text!r} to {PROMPTS[0]!r}")
        console.print(f"{name}: {text!r}")


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


def compare(servers: dict[str, Send], progress: Progress) -> list[list[str]]:
    """At each client count, every server in turn (Pressroom last); Pressroom's requests/s
    over each other server's, against the goals."""
    rows = []
    for clients, goals in GOALS.items():
        measured = {
            name: closed_loop(send, clients, f"{name}, {clients} client(s)", progress)
            for name, send in servers.items()
        }
        pressroom_rps = measured[PRESSROOM][0]
        for name, (rps, latency) in measured.items():
            ratio, goal_cell = pressroom_rps / rps, "—"
            goal = goals.get(name)
            if goal is not None:
                goal_cell = f"{'met' if ratio >= goal else 'NOT met'} (≥ {goal:g}x)"
            rows.append(
                [
                    str(clients),
                    name,
                    f"{rps:.2f}",
                    f"{latency.p50_ms:.0f} / {latency.p95_ms:.0f}",
                    "—" if name == PRESSROOM else f"{ratio:.2f}x",
                    goal_cell,
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
        litserve(model_dir) as hooks_url,
        litserve(model_dir, plain_transformers=True) as plain_url,
        Emulator(
            profile,
            models_root=root,
            parameter_overrides=REALTIME,
            only_endpoints=[endpoint],
            threads_per_worker=THREADS,
        ) as emulator,
        httpx.Client(timeout=600, limits=httpx.Limits(max_connections=32)) as http,
    ):

        def via(url: str) -> Send:
            def send(prompt: str) -> str:
                response = http.post(url, json={**body, "inputs": prompt})
                return generated_text(response.raise_for_status().json())

            return send

        def via_pressroom(prompt: str) -> str:
            if not hasattr(local, "runtime"):
                local.runtime = emulator.client(max_pool_connections=32, read_timeout=600)
            answer = local.runtime.invoke_endpoint(
                EndpointName=endpoint,
                TargetVariant="A",
                ContentType="application/json",
                Body=json.dumps({**body, "inputs": prompt}),
            )["Body"].read()
            return generated_text(json.loads(answer))

        servers = {HOOKS: via(hooks_url), PLAIN: via(plain_url), PRESSROOM: via_pressroom}
        check(servers)
        rows = compare(servers, progress)
    title = (
        f"Throughput against LitServe {pinned('litserve')} ({GENERATOR}, {profile} profile, "
        f"{THREADS} thread per server, greedy, "
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
            "written). Pressroom: boto3 `invoke_endpoint` → emulator → worker, which runs "
            "generator requests one at a time on the artifact's ONNX Runtime GenAI engine (one "
            "thread, no merging). LitServe + hooks: `POST /predict` → LitServe (dynamic "
            "batching, max batch 16, 25 ms window) → the same `predict_fn`, which decodes a "
            "batch's prompts one after another on the same engine. LitServe + transformers "
            f"generate: the same LitServe batching → `transformers` {pinned('transformers')} "
            "`generate` in fp32 on the artifact's weights, each batch left-padded after the "
            "same headline context, greedy. One thread per server; closed-loop clients; each "
            "level runs LitServe + hooks, then LitServe + transformers generate, then "
            "Pressroom. Goals: at 8 clients Pressroom ≥ 1.5x LitServe + hooks and ≥ 4x "
            "LitServe + transformers generate; at 1 client ≥ 1x LitServe + hooks.",
            "",
            *markdown,
        ]
    )
    console.print(f"wrote {results.write_section('frameworks', body)}")


if __name__ == "__main__":
    main()
