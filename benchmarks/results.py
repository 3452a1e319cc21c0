"""What every benchmark shares: its own marked section of BENCHMARKS.md.

Percentiles come from `pressroom_common.experiment.statistics.percentile`, the definition
the guardrail and the reliability report use too.
"""

from __future__ import annotations

from pathlib import Path

from local.paths import REPO_ROOT

BENCHMARKS_FILE = REPO_ROOT / "BENCHMARKS.md"


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
