"""What every benchmark shares: percentiles, and its own marked section of BENCHMARKS.md."""

from __future__ import annotations

import math
from pathlib import Path

BENCHMARKS_FILE = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default method)."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def write_section(name: str, body: str) -> Path:
    """Replace the `<!-- bench-NAME:start/end -->` section of BENCHMARKS.md (append if new).

    Each benchmark owns one section, so running one never rewrites another's figures.
    """
    start, end = f"<!-- bench-{name}:start -->", f"<!-- bench-{name}:end -->"
    section = f"{start}\n{body.rstrip()}\n{end}"
    text = BENCHMARKS_FILE.read_text() if BENCHMARKS_FILE.exists() else "# Benchmarks\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    BENCHMARKS_FILE.write_text(text)
    return BENCHMARKS_FILE
