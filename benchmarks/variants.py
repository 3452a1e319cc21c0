"""Variant A and its challenger B side by side in one run (`make bench-variants`).

The question B answers: "is a model at least 2x cheaper as good for readers?" Both packaged
generators load through `model_fn` (B is quantized as served) and get the same held-out split,
the same reader prompts and interleaved one-thread timings (training.compare).

Beside them, the memory-bandwidth floor of decoding on this machine: at batch 1 every new token
reads every weight once, so no kernel decodes faster than the weights' bytes over the bandwidth
one thread can read (measured here as a sum over a 256 MiB tensor).
"""

from __future__ import annotations

import math
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from rich.console import Console
from rich.markdown import Markdown
from safetensors import safe_open

from benchmarks import results
from local.paths import DEFAULT_MODELS_ROOT
from training.compare import compare_generators
from training.evaluate import markdown_table

SINGLE_STREAM_GOAL_MS = 15.0  # per token at one thread, within +0.03 bits/char of fp32


def read_bandwidth_gb_s(mebibytes: int = 256, rounds: int = 7) -> float:
    """GB/s one thread reads from memory: the median of summing a tensor too big for caches."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tensor = torch.ones(mebibytes * 2**20 // 4)
        tensor.sum()
        seconds = []
        for _ in range(rounds):
            started = time.perf_counter()
            tensor.sum()
            seconds.append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
    return tensor.numel() * 4 / statistics.median(seconds) / 1e9


def floor_paragraph(profile: str) -> str:
    weights = DEFAULT_MODELS_ROOT / profile / "headline-base" / "model" / "model.safetensors"
    with safe_open(weights, "pt") as tensors:  # tied weights are stored once, read once
        parameters = sum(math.prod(tensors.get_slice(k).get_shape()) for k in tensors.keys())  # noqa: SIM118
    bandwidth = read_bandwidth_gb_s()
    floor_ms = {bits: parameters * bits / 8 / (bandwidth * 1e9) * 1000 for bits in (32, 16, 8)}
    return (
        f"Memory-bandwidth floor: one thread reads {bandwidth:.1f} GB/s here; headline-base "
        f"has {parameters / 1e6:.0f}M parameters, so a token costs at least "
        f"{floor_ms[32]:.1f} ms in fp32, {floor_ms[16]:.1f} ms in bf16 and {floor_ms[8]:.1f} ms "
        f"with every weight in int8. Goal: ≤ {SINGLE_STREAM_GOAL_MS:g} ms/token at one thread "
        "within +0.03 bits/char of fp32."
    )


def main() -> None:
    console = Console()
    profile = (
        "full"
        if (DEFAULT_MODELS_ROOT / "full" / "headline-lite" / "manifest.json").exists()
        else "smoke"
    )
    console.print(f"comparing the {profile} generators (about a minute per model)")
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    table = markdown_table(compare_generators(DEFAULT_MODELS_ROOT, profile))
    console.print(Markdown(table))
    floor = floor_paragraph(profile)
    console.print(floor)
    body = "\n".join(
        [
            "## Variant A and challenger B (`make bench-variants`)",
            "",
            f"Artifacts: **{profile}** profile. Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on "
            f"{platform.machine()} with {torch.get_num_threads()} torch threads for the held-out "
            f"and reading figures, 1 thread for timings (1-minute load average {load}), "
            f"Python {sys.version.split()[0]}, torch {torch.__version__}.",
            "bits/char over the held-out test headlines (the same slice for both); reading figures "
            "over 40 reader prompts with the served defaults (seeded): share of continuations "
            "with no word, share whose headline repeats a word back to back, median words per "
            "continuation; timings: greedy, 16 new tokens, median of 8 prompts, 3 rounds "
            "alternating between the models.",
            "",
            table,
            "",
            floor,
            "",
            "Reproduce: `make bench-variants` (or `.venv/bin/pressroom evaluate` to print it).",
        ]
    )
    console.print(f"wrote {results.write_section('variants', body)}")


if __name__ == "__main__":
    main()
