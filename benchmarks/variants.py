"""Variant A and its challenger B side by side in one run (`make bench-variants`).

The question B answers: "is a model at least 2x cheaper as good for readers?" Both packaged
generators load through `model_fn` (B is quantized as served) and get the same held-out split,
the same reader prompts and interleaved one-thread timings (training.compare).
"""

from __future__ import annotations

import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch
from rich.console import Console
from rich.markdown import Markdown

from benchmarks import results
from local.paths import DEFAULT_MODELS_ROOT
from training.compare import compare_generators
from training.evaluate import markdown_table


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
            "Reproduce: `make bench-variants` (or `.venv/bin/pressroom evaluate` to print it).",
        ]
    )
    console.print(f"wrote {results.write_section('variants', body)}")


if __name__ == "__main__":
    main()
