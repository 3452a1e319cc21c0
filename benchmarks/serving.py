"""Benchmark the classifier's serving: each figure side by side with its baseline, one run.
(The generator's throughput against LitServe is `benchmarks.frameworks`.)

(a) overhead: p50/p95 of one classification through the SageMaker emulator over HTTP (boto3
    `invoke_endpoint` -> emulator -> worker -> `predict_fn`) against the model's own time: the
    served artifact's `predict_fn` in-process on the same input, with the runtime the endpoint
    serves (ONNX Runtime) and the worker's thread budget. Goal: served p50 <= 2x in-process p50.
(b) classifier runtime: PyTorch, ONNX Runtime fp32 (exported from the artifact's weights) and
    the artifact's served ONNX model (int8) at batch 1 and 16, on one thread and on the host's,
    with each one's macro-F1 on the test split. Goal: int8 >= 3x PyTorch at batch 1 on one
    thread, with a macro-F1 not lower than PyTorch's.

Runs on the `full` artifacts when they are built, else `smoke` (the table says which). Prints
rich tables and writes them to BENCHMARKS.md between this benchmark's markers.

    .venv/bin/python -m benchmarks.serving [--profile full|smoke] [--models-root DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from benchmarks import results
from local.emulate.sagemaker import Emulator
from local.emulate.sagemaker.endpoints import endpoint_specs, load_local_stacks
from local.emulate.sagemaker.worker import load_inference_module
from local.paths import DEFAULT_MODELS_ROOT
from training.data import build_corpus
from training.definitions import load_definition
from training.evaluate import classification_report, predict_labels
from training.package import export_onnx
from training.pipeline import select_data

REALTIME = {"HostingMode": "realtime"}
CLASSIFIER = "news-classifier"
HEADLINES = [
    "Chancellor unveils spending plans for schools",
    "Striker scores twice as champions win again",
    "Chipmaker shares jump on strong demand",
    "Oscar nominations announced for new drama",
] * 4
OVERHEAD_CALLS = 200
OVERHEAD_GOAL = 2.0  # served p50 over in-process p50
# batch -> (recorded calls per contender, calls in a row per block)
CLASSIFIER_CALLS = {1: (240, 40), 16: (60, 10)}

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


def pick_profile(requested: str | None, root: Path, *model_names: str) -> str:
    """`requested`, else `full` when every one of `model_names` is built there, else `smoke`."""
    if requested:
        return requested
    full = root / "full"
    built = all((full / name / "model" / "config.json").is_file() for name in model_names)
    return "full" if built else "smoke"


def realtime_endpoint(profile: str, root: Path, model_name: str) -> str:
    """The endpoint that serves `model_name` in realtime mode, per the templates."""
    stacks = load_local_stacks(profile, root, None, REALTIME)
    specs = endpoint_specs(stacks, profile, root)
    return next(s.name for s in specs if any(v.model_name == model_name for v in s.variants))


# ---- (a) overhead -------------------------------------------------------------------------


def bench_overhead(
    emulator: Emulator, endpoint: str, model_dir: Path, progress: Progress
) -> list[list[str]]:
    import torch

    # The worker's thread budget, so only the serving path differs.
    torch.set_num_threads(emulator.threads_per_worker)
    body = {"inputs": HEADLINES[0]}
    inference = load_inference_module(model_dir)
    model = inference.model_fn(str(model_dir))
    variant = emulator.endpoints[endpoint].variants[0].name
    runtime = emulator.client()
    payload = json.dumps(body)

    def over_http() -> None:
        runtime.invoke_endpoint(
            EndpointName=endpoint,
            TargetVariant=variant,
            ContentType="application/json",
            Body=payload,
        )["Body"].read()

    measured = timed(
        {"direct": lambda: inference.predict_fn(body, model), "served": over_http},
        OVERHEAD_CALLS,
        "predict_fn in-process / over HTTP",
        progress,
        block=20,
    )
    direct, served = measured["direct"], measured["served"]
    ratio = served.p50_ms / direct.p50_ms
    met = "yes" if ratio <= OVERHEAD_GOAL else "NO"
    return [
        [
            f"`predict_fn` in-process ({model.runtime}, the model's own time)",
            f"{direct.p50_ms:.2f}",
            f"{direct.p95_ms:.2f}",
            "1.00x",
            "—",
        ],
        [
            "boto3 `invoke_endpoint` → emulator → worker → `predict_fn`",
            f"{served.p50_ms:.2f}",
            f"{served.p95_ms:.2f}",
            f"{ratio:.2f}x",
            f"{met} (≤ {OVERHEAD_GOAL:g}x)",
        ],
    ]


# ---- (b) classifier runtime ---------------------------------------------------------------


CLASSIFIER_GOAL = 3.0  # served ONNX (int8) over PyTorch at batch 1 on one thread
CLASSIFIER_HEADERS = [
    "runtime",
    "threads",
    "batch 1 p50 ms",
    "speed-up",
    "batch 16 p50 ms",
    "speed-up (16)",
    "macro-F1 (test)",
    "goal",
]


def bench_classifier(model_dir: Path, profile: str, progress: Progress) -> list[list[str]]:
    """Each runtime through inference.py's `classify` (tokenisation and softmax included), in
    blocks, at 1 thread and at the host's torch thread count; speed-ups are over PyTorch at the
    same thread count."""
    import torch

    inference = load_inference_module(model_dir)
    threads = torch_threads()
    manifest = json.loads((model_dir.parent / "manifest.json").read_text())
    served = f"ONNX {manifest['metrics'].get('onnx', {}).get('weights', 'fp32')} (served)"
    pytorch = inference.load_model(model_dir, prefer_onnx=False)
    test_set = select_data(load_definition(CLASSIFIER, profile), build_corpus()).test
    with tempfile.TemporaryDirectory() as scratch:
        fp32_dir = Path(scratch)
        for path in model_dir.iterdir():
            if path.name != inference.ONNX_FILE:
                (fp32_dir / path.name).symlink_to(path)
        export_onnx(pytorch.model, pytorch.tokenizer, fp32_dir / inference.ONNX_FILE)
        runtimes: dict[tuple[str, int], Any] = {}
        for count in sorted({1, threads}):
            # inference.py sizes ONNX Runtime's thread pool from torch's thread count at load.
            torch.set_num_threads(count)
            runtimes[("PyTorch fp32", count)] = pytorch
            runtimes[("ONNX fp32", count)] = inference.load_model(fp32_dir)
            runtimes[(served, count)] = inference.load_model(model_dir)
        torch.set_num_threads(threads)
        macro_f1 = {
            name: classification_report(
                [h.category for h in test_set], predict_labels(loaded, test_set)
            )["test_macro_f1"]
            for (name, _), loaded in runtimes.items()
        }

    def call(key: tuple[str, int], texts: list[str]) -> Callable[[], Any]:
        def run() -> Any:
            torch.set_num_threads(key[1])  # PyTorch's pool is global; ONNX Runtime's per session
            return inference.classify(runtimes[key], texts)

        return run

    p50: dict[int, dict[tuple[str, int], float]] = {}
    for batch, (calls, block) in CLASSIFIER_CALLS.items():
        texts = HEADLINES[:batch]
        measured = timed(
            {f"{name}/{count}": call((name, count), texts) for name, count in runtimes},
            calls,
            f"PyTorch / ONNX fp32 / {served}, batch {batch}",
            progress,
            block=block,
        )
        p50[batch] = {key: measured[f"{key[0]}/{key[1]}"].p50_ms for key in runtimes}
    torch.set_num_threads(threads)
    rows = []
    for name, count in runtimes:
        speedups = {b: p50[b][("PyTorch fp32", count)] / p50[b][(name, count)] for b in p50}
        goal = "—"
        if name == served and count == 1:
            fast = speedups[1] >= CLASSIFIER_GOAL
            accurate = macro_f1[name] >= macro_f1["PyTorch fp32"]
            verdict = "met" if fast and accurate else "NOT met"
            goal = f"{verdict} (≥ {CLASSIFIER_GOAL:g}x, F1 ≥ PyTorch's)"
        rows.append(
            [
                name,
                str(count),
                f"{p50[1][(name, count)]:.2f}",
                f"{speedups[1]:.2f}x",
                f"{p50[16][(name, count)]:.2f}",
                f"{speedups[16]:.2f}x",
                f"{macro_f1[name]:.4f}",
                goal,
            ]
        )
    return rows


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


def write_section(profile: str, blocks: list[str]) -> None:
    body = "\n".join(
        [
            "## Classifier serving (`make bench-serving` → `python -m benchmarks.serving`)",
            "",
            f"Artifact: `{CLASSIFIER}` **{profile}** profile. Measured "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} with "
            f"{os.cpu_count()} CPU cores (1-minute load average {os.getloadavg()[0]:.1f} when "
            f"written), Python {platform.python_version()}.",
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
    parser.add_argument(
        "--models-root", type=Path, default=DEFAULT_MODELS_ROOT, help="<root>/<profile>/<model>"
    )
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()
    root = args.models_root
    classifier_profile = pick_profile(args.profile, root, CLASSIFIER)
    console.print(f"[bold]serving benchmarks on the {classifier_profile} {CLASSIFIER}[/]")
    classifier_dir = root / classifier_profile / CLASSIFIER / "model"

    sections: dict[str, list[str]] = {}

    def report(key: str, title: str, headers: list[str], rows: list[list[str]]) -> None:
        table, markdown = render(title, headers, rows)
        console.print(table)
        sections[key] = markdown

    with Progress(console=console, transient=True) as progress:
        # The classifier runs first, before the emulator's workers take their share of the CPU.
        report(
            "b",
            f"(b) Classifier runtime ({CLASSIFIER}), p50 per call, in alternating blocks",
            CLASSIFIER_HEADERS,
            bench_classifier(classifier_dir, classifier_profile, progress),
        )
        endpoint = realtime_endpoint(classifier_profile, root, CLASSIFIER)
        with Emulator(
            classifier_profile,
            models_root=root,
            parameter_overrides=REALTIME,
            only_endpoints=[endpoint],
        ) as emulator:
            report(
                "a",
                f"(a) Serving overhead of one classification ({CLASSIFIER}), one client, in "
                f"alternating blocks ({emulator.threads_per_worker} thread(s) on both sides)",
                ["path", "p50 ms", "p95 ms", "p50 / in-process p50", "goal met"],
                bench_overhead(emulator, endpoint, classifier_dir, progress),
            )
    blocks = [line for key in sorted(sections) for line in sections[key]]
    if not args.no_write:
        write_section(classifier_profile, blocks)


if __name__ == "__main__":
    main()
