"""Benchmark the API path end to end through the local stack, beside the raw model call.

For each generator variant: p50/p95 of `POST /api/generate` over HTTP (local gateway → generate
handler → SageMaker emulator → classifier → store write) against `InvokeEndpoint` on the same
emulator with the same payload (boto3, `TargetVariant`), in the same run, requests alternating
between the two so load drifts hit both. The difference is what the API adds: gateway and
handler, the classifier call and the store write. The handler's own `latency_ms` breakdown is
shown too.

Runs on the `full` artifacts when they are built, else `smoke` (the table says which). Prints a
rich table and writes it to BENCHMARKS.md between this benchmark's markers.

    .venv/bin/python -m benchmarks.api [--profile full|smoke] [--requests 20] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pressroom_common.experiment.statistics import percentile
from pressroom_common.generation.contracts import GenerateRequest
from pressroom_common.generation.service import generator_payload
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from benchmarks import results
from local.devstack.stack import LocalStack
from local.paths import DEFAULT_MODELS_ROOT

GENERATOR_ENDPOINT = "pressroom-dev-headline"
PROMPTS = ["Government announces", "Stocks fall as", "Film star", "Scientists discover"]
# A default request (the API's own max_new_tokens, temperature, top-k and top-p), seeded so both
# paths write the same headlines. Goal: the API's p50 under 200 ms.
SAMPLING = {"seed": 7}
API_P50_GOAL_MS = 200.0
WARM_UP_REQUESTS = 2


@dataclass(frozen=True)
class VariantFigures:
    variant: str
    api_ms: list[float]
    model_call_ms: list[float]
    handler_breakdown: list[dict[str, float]]


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def measure_variant(
    stack: LocalStack, variant: str, requests: int, progress: Progress
) -> VariantFigures:
    assert stack.emulator is not None
    runtime = stack.emulator.client()
    task = progress.add_task(f"variant {variant}", total=requests + WARM_UP_REQUESTS)
    figures = VariantFigures(variant, [], [], [])
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        for n in range(requests + WARM_UP_REQUESTS):
            prompt = PROMPTS[n % len(PROMPTS)]

            def api_call(prompt: str = prompt) -> httpx.Response:
                body = {"prompt": prompt, "variant": variant, **SAMPLING}
                return client.post("/api/generate", json=body).raise_for_status()

            def model_call(prompt: str = prompt) -> Any:
                defaults = GenerateRequest(prompt=prompt, **SAMPLING).parameters()
                return runtime.invoke_endpoint(
                    EndpointName=GENERATOR_ENDPOINT,
                    TargetVariant=variant,
                    ContentType="application/json",
                    Body=json.dumps(generator_payload(prompt, defaults)),
                )["Body"].read()

            # Alternate which side goes first so a load change hits both equally.
            calls = (api_call, model_call) if n % 2 == 0 else (model_call, api_call)
            timings = {call: timed(call) for call in calls}
            if n >= WARM_UP_REQUESTS:
                api_ms, response = timings[api_call]
                figures.api_ms.append(api_ms)
                figures.model_call_ms.append(timings[model_call][0])
                figures.handler_breakdown.append(response.json()["latency_ms"])
            progress.advance(task)
    return figures


def results_table(profile: str, requests: int, all_figures: list[VariantFigures]) -> Table:
    table = Table(
        title=f"End-to-end latency through the local stack ({profile} models, {requests} "
        "requests per variant, ms)"
    )
    for column in (
        "variant",
        "API p50",
        "API p95",
        "model call p50 (baseline)",
        "model call p95",
        "API overhead p50",
        "handler: model / classifier / total p50",
        f"goal: API p50 < {API_P50_GOAL_MS:.0f}",
    ):
        table.add_column(column, justify="right")
    for figures in all_figures:
        api_p50 = statistics.median(figures.api_ms)
        model_p50 = statistics.median(figures.model_call_ms)
        breakdown = " / ".join(
            f"{statistics.median(b[key] or 0.0 for b in figures.handler_breakdown):.0f}"
            for key in ("model", "classifier", "total")
        )
        table.add_row(
            figures.variant,
            f"{api_p50:.0f}",
            f"{percentile(figures.api_ms, 0.95):.0f}",
            f"{model_p50:.0f}",
            f"{percentile(figures.model_call_ms, 0.95):.0f}",
            f"{api_p50 - model_p50:+.0f} ({(api_p50 - model_p50) / model_p50:+.0%})",
            breakdown,
            "met" if api_p50 < API_P50_GOAL_MS else "NOT met",
        )
    return table


def write_section(table: Table) -> None:
    console = Console(record=True, width=140)
    console.print(table)
    body = (
        "## API path through the local stack (`make bench-api`)\n\n"
        'A default request (`{"prompt": ..., "variant": ..., "seed": 7}`: the API\'s own '
        "sampling parameters), the same body on both paths.\n\n"
        f"```text\n{console.export_text().rstrip()}\n```"
    )
    results.write_section("api", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=["full", "smoke"], default=None)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    arguments = parser.parse_args()
    profile = arguments.profile or (
        "full"
        if (DEFAULT_MODELS_ROOT / "full" / "headline-base" / "manifest.json").exists()
        else "smoke"
    )
    console = Console()
    with tempfile.TemporaryDirectory() as scratch:
        database_url = f"sqlite:///{Path(scratch) / 'bench.db'}"
        with console.status(f"Starting the local stack ({profile} models)"):
            stack = LocalStack(profile, database_url=database_url, site_dir=None)
            stack.start()
        try:
            with Progress(console=console) as progress:
                figures = [
                    measure_variant(stack, variant, arguments.requests, progress)
                    for variant in ("A", "B")
                ]
        finally:
            stack.stop()
    table = results_table(profile, arguments.requests, figures)
    console.print(table)
    if not arguments.no_write:
        write_section(table)
        console.print(f"written to {results.BENCHMARKS_FILE.name}")


if __name__ == "__main__":
    main()
