"""What `pressroom up` prints once the stack is up: the models served with their figures, the
URL, a request to try, where the log file is and how to follow it.

The figures come from each artifact's `manifest.json` (`metrics`); the known headline metrics
are shown when present, other test metrics otherwise, so a manifest with new or missing keys
still reads (the summary never fails the start-up).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from local.emulate.sagemaker.endpoints import EndpointSpec
from local.plumbing.logfile import DEFAULT_LOG_FILE

# Headline metrics, in the order shown: manifest key -> how to write the value.
HEADLINE_METRICS: tuple[tuple[str, str], ...] = (
    ("test_bits_per_char", "{:.2f} bits/char"),
    ("test_perplexity", "ppl {:.4g}"),
    ("test_macro_f1", "macro-F1 {:.2f}"),
    ("test_accuracy", "accuracy {:.2f}"),
)
MAX_FIGURES = 2
FOLLOW_COMMAND = "make logs-local"
TRY_PROMPT = "Stocks"


@dataclass(frozen=True)
class ServedModel:
    name: str
    endpoint: str
    variant: str
    traffic_share: float | None
    """The variant's share of its endpoint's traffic (None for a single-variant endpoint)."""
    version: str
    figures: str


def read_manifest(artifact_dir: Path) -> dict[str, Any]:
    """The manifest next to an unpacked `model/` directory; empty when missing or unreadable."""
    try:
        manifest = json.loads((artifact_dir.parent / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def figures(metrics: Any) -> str:
    """Up to two headline figures from a manifest's `metrics`, e.g. `1.54 bits/char ·
    perplexity 4.7`; other numeric `test_*` metrics when none of the known ones is there."""
    if not isinstance(metrics, Mapping):
        return "no metrics in the manifest"
    shown = [
        template.format(value)
        for key, template in HEADLINE_METRICS
        if (value := _number(metrics.get(key))) is not None
    ]
    if not shown:
        shown = [
            f"{key.removeprefix('test_').replace('_', ' ')} {value:.4g}"
            for key, raw in metrics.items()
            if key.startswith("test_") and (value := _number(raw)) is not None
        ]
    return " · ".join(shown[:MAX_FIGURES]) or "no metrics in the manifest"


def served_models(endpoints: Mapping[str, EndpointSpec]) -> list[ServedModel]:
    models: list[tuple[bool, ServedModel]] = []
    for endpoint in endpoints.values():
        total = sum(variant.weight for variant in endpoint.variants)
        split = len(endpoint.variants) > 1 or endpoint.shadow is not None
        for variant in endpoint.hosted:
            manifest = read_manifest(variant.artifact_dir)
            share = variant.weight / total if total > 0 and split else None
            if variant is endpoint.shadow:
                # Its answers are captured, never served: no share of the readers.
                name, share = f"{variant.model_name} (challenger, shadow)", None
            elif variant.challenger:
                name = f"{variant.model_name} (challenger)"
            else:
                name = variant.model_name
            served = ServedModel(
                name=name,
                endpoint=endpoint.name,
                variant=variant.name,
                traffic_share=share,
                version=str(manifest.get("version", "unknown")),
                figures=figures(manifest.get("metrics")),
            )
            models.append((share is None and variant is not endpoint.shadow, served))
    # The A/B variants (and a shadow) first, then the models that serve every request (the
    # classifier).
    return [model for _, model in sorted(models, key=lambda item: item[0])]


def display_path(path: Path) -> str:
    """`path` relative to the working directory when it is under it (shorter to read)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def curl_example(url: str) -> str:
    """A generate request to paste (curl's default form content type reads as JSON here too)."""
    body = json.dumps({"prompt": TRY_PROMPT}, separators=(",", ":"))
    return f"curl {url}api/generate -d {shlex.quote(body)}"


def summary_panel(
    url: str,
    models: list[ServedModel],
    log_path: Path,
    *,
    profile: str = "full",
    limits: str | None = None,
) -> Panel:
    """The panel `pressroom up` prints when the stack is up; `limits` describes its web ACL."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in ("model", "variant", "version", f"test figures ({profile})"):
        table.add_column(column)
    for model in models:
        share = "" if model.traffic_share is None else f" {model.traffic_share:.0%}"
        table.add_row(model.name, model.variant + share, model.version, model.figures)
    log = display_path(log_path)
    pressroom = _pressroom()
    is_default = log_path.resolve() == DEFAULT_LOG_FILE
    file_option = "" if is_default else f" --file {shlex.quote(log)}"
    follow = FOLLOW_COMMAND if is_default else f"{pressroom} logs -f{file_option}"
    details = Table.grid(padding=(0, 2))
    details.add_column(style="bold", no_wrap=True)
    details.add_column()
    details.add_row("Site", Text(url, style="bold cyan"))
    details.add_row("", f"dashboard: {url}dashboard.html\nAPI: {url}api/openapi.json")
    details.add_row("Try", "write headlines on the site and vote on them; the dashboard")
    details.add_row("", "shows which model readers prefer. From another terminal:")
    details.add_row("", curl_example(url))
    details.add_row("Logs", f"{log}: the functions' log and metric lines,")
    details.add_row("", "the access log, the model workers; follow them with")
    details.add_row("", follow)
    details.add_row("", f"or {pressroom} logs -f{file_option} --function generate")
    if limits is not None:
        details.add_row("Limits", f"{limits}: 429 past them (--no-waf lifts them)")
    return Panel(
        Group(table, Text(), details, Text(), Text("Ctrl-C stops it.", style="bold")),
        title="[bold green]Pressroom is up[/]",
        title_align="left",
        expand=False,
    )


def _pressroom() -> str:
    """How to run the CLI from the repository: the virtualenv's script when it is there."""
    script = Path(".venv") / "bin" / "pressroom"
    return str(script) if script.exists() and os.access(script, os.X_OK) else "pressroom"
