"""Variant A and its challenger B side by side in one run (`make bench-variants`), beside
the fp32 PyTorch model both were converted from (transformers `generate`).

The question B answers: "does int4 cost readers anything?" Both packaged generators load
through the serving code on their engine (ONNX Runtime GenAI, A int8, B int4) and get the
same held-out split, the same reader prompts and interleaved one-thread timings
(training.compare).

Beside them, the memory-bandwidth floor of decoding on this machine: at batch 1 every new token
reads every weight once, so no kernel decodes faster than the weights' bytes over the bandwidth
one thread can read (measured here as a sum over a 256 MiB tensor).
"""

from __future__ import annotations

import importlib.metadata
import math
import multiprocessing
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

import models.serving.inference as serving
from benchmarks import results
from local.paths import DEFAULT_MODELS_ROOT
from training.compare import compare_generators
from training.evaluate import TIMING_PARAMETERS, TIMING_PROMPTS, markdown_table

# headline-base as served, at one thread: per token, per headline, and held-out bits/char above
# its fp32 weights'.
GOALS = {"ms_per_token": 12.0, "ms_per_headline": 120.0, "bits_per_char_drift": 0.02}


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
    floor_ms = {bits: parameters * bits / 8 / (bandwidth * 1e9) * 1000 for bits in (32, 8, 4)}
    return (
        f"Memory-bandwidth floor: one thread reads {bandwidth:.1f} GB/s here; headline-base "
        f"has {parameters / 1e6:.0f}M parameters, so a token costs at least "
        f"{floor_ms[32]:.1f} ms in fp32, {floor_ms[8]:.1f} ms with every weight in int8 and "
        f"{floor_ms[4]:.1f} ms in int4. Goals for headline-base as served, at one thread: "
        f"≤ {GOALS['ms_per_token']:g} ms/token, ≤ {GOALS['ms_per_headline']:g} ms per headline, "
        f"held-out bits/char within +{GOALS['bits_per_char_drift']:g} of its fp32 weights."
    )


def _serve_prompts(model_dir: Path, threads: int, prompts: list[str]) -> float:
    """In its own process: load the engine on `threads` threads, answer `prompts` one after
    another (greedy, as timed above); the seconds the answers took."""
    loaded = serving.load_generator(model_dir, threads)
    serving.generate(loaded, prompts[:1], TIMING_PARAMETERS)
    started = time.perf_counter()
    for prompt in prompts:
        serving.generate(loaded, [prompt], TIMING_PARAMETERS)
    return time.perf_counter() - started


def sessions_per_core(profile: str, cores: int = 2, rounds: int = 3) -> str:
    """Two ways to spend `cores` cores on one generator: one engine on every core, or one
    single-thread engine per core (what several model-server workers are), in headlines/s."""
    model_dir = DEFAULT_MODELS_ROOT / profile / "headline-base" / "model"
    prompts = list(TIMING_PROMPTS) * 2
    layouts = {
        f"1 process x {cores} threads": (1, cores),
        f"{cores} processes x 1 thread": (cores, 1),
    }
    rates: dict[str, list[float]] = {name: [] for name in layouts}
    context = multiprocessing.get_context("spawn")
    for _ in range(rounds):
        for name, (processes, threads) in layouts.items():
            with context.Pool(processes) as pool:
                seconds = pool.starmap(_serve_prompts, [(model_dir, threads, prompts)] * processes)
            rates[name].append(processes * len(prompts) / max(seconds))
    cells = ", ".join(
        f"{name}: {statistics.median(r):.1f} headlines/s" for name, r in rates.items()
    )
    return (
        f"Sessions per core (headline-base as served, greedy, {len(prompts)} prompts per "
        f"process, median of {rounds} rounds): {cells}."
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
    sessions = sessions_per_core(profile)
    console.print(sessions)
    body = "\n".join(
        [
            "## Variant A and challenger B (`make bench-variants`)",
            "",
            f"Artifacts: **{profile}** profile. Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on "
            f"{platform.machine()} with {torch.get_num_threads()} torch threads for the fp32 "
            f"figures, 1 thread for the engines and for every timing (1-minute load average "
            f"{load}), Python {sys.version.split()[0]}, torch {torch.__version__}, ONNX Runtime "
            f"GenAI {importlib.metadata.version('onnxruntime-genai')}.",
            "bits/char over the held-out test headlines (the same slice for every column): of "
            "the fp32 weights on PyTorch, and as served (the engine's logits, token by token); "
            "reading figures over 40 reader prompts with the served defaults (seeded): share of "
            "continuations with no word, share whose headline repeats a word back to back, "
            "median words per continuation; timings: greedy, at most 16 new tokens (a headline "
            "ends at its end token), median of 20 prompts, 3 rounds alternating between the "
            "columns; ms/token is a headline's whole time over its new tokens.",
            "",
            table,
            "",
            floor,
            "",
            sessions,
            "",
            "Reproduce: `make bench-variants` (or `.venv/bin/pressroom evaluate` to print it).",
        ]
    )
    console.print(f"wrote {results.write_section('variants', body)}")


if __name__ == "__main__":
    main()
