"""PNG charts and one HTML page of an experiment report (matplotlib, headless Agg backend)."""

from __future__ import annotations

import html
import math
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from pressroom_common.experiment.statistics import beta_quantile, up_rate_posterior

from local.experiment.report import TABLE_COLUMNS, ExperimentReport, summary_lines, table_rows

POSTERIORS_PNG = "posteriors.png"
UP_RATE_PNG = "up-rate-over-time.png"
TRAFFIC_PNG = "traffic-split.png"
REPORT_HTML = "report.html"


def write_report_files(report: ExperimentReport, out_dir: Path) -> list[Path]:
    """Write the three charts and `report.html` into `out_dir`; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = {
        POSTERIORS_PNG: posterior_chart(report),
        UP_RATE_PNG: up_rate_chart(report),
        TRAFFIC_PNG: traffic_chart(report),
    }
    written = [save_chart(figure, out_dir / name) for name, figure in charts.items()]
    page = out_dir / REPORT_HTML
    page.write_text(report_html(report), encoding="utf-8")
    return [*written, page]


def save_chart(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def loop_chart(figures: dict[str, Any]) -> Figure:
    """Round two of the simulated loop: the challenger's P(best) from `/api/stats` and its share
    of the traffic, against readers so far (`local.experiment.loop.LoopResult.to_json`)."""
    checkpoints = figures["second_round_checkpoints"]
    readers = [checkpoint["requests"] for checkpoint in checkpoints]
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.plot(
        readers,
        [checkpoint["probability_best"].get("B", 0.0) for checkpoint in checkpoints],
        marker="o",
        label="P(challenger best)",
    )
    axes.plot(
        readers,
        [checkpoint["challenger_share_in_window"] for checkpoint in checkpoints],
        linestyle="--",
        label="challenger's share of the last 50 answers",
    )
    axes.axhline(0.95, color="grey", linewidth=0.8, linestyle=":")
    axes.axhline(figures["canary_share"], color="grey", linewidth=0.8, linestyle="-.")
    axes.set(
        xlabel="readers in the round (each votes once)",
        ylim=(0, 1.02),
        title=f"Challenger {figures['challenger']['version'][:8]} against the champion",
    )
    axes.legend(loc="lower right")
    return figure


def posterior_chart(report: ExperimentReport) -> Figure:
    """Each variant's Beta(1 + up, 1 + down) density of its up-rate."""
    figure, axes = plt.subplots(figsize=(7, 4))
    posteriors = [(item, *up_rate_posterior(item.up, item.down)) for item in report.stats.variants]
    # Zoom on where the posteriors have mass (0.1% to 99.9% quantiles, padded).
    low = min(beta_quantile(a, b, 0.001) for _, a, b in posteriors)
    high = max(beta_quantile(a, b, 0.999) for _, a, b in posteriors)
    pad = (high - low) * 0.1
    x = np.linspace(max(0.0005, low - pad), min(0.9995, high + pad), 2000)
    for item, a, b in posteriors:
        log_norm = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
        density = np.exp((a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - log_norm)
        probability = report.stats.verdict.probability_best[item.variant]
        (line,) = axes.plot(
            x, density, label=f"{report.label(item.variant)}  P(best) {probability:.3f}"
        )
        axes.fill_between(x, density, color=line.get_color(), alpha=0.15)
    axes.set(xlabel="up-rate", ylabel="posterior density", title="Posterior of each up-rate")
    axes.legend()
    return figure


def _cumulative_by_variant(
    report: ExperimentReport,
) -> dict[str, list[tuple[datetime, int, int, int]]]:
    """Per variant: (bucket start, cumulative requests, cumulative up, cumulative down)."""
    series: dict[str, list[tuple[datetime, int, int, int]]] = defaultdict(list)
    totals: dict[str, tuple[int, int, int]] = defaultdict(lambda: (0, 0, 0))
    for bucket in report.timeline:
        requests, up, down = totals[bucket.variant]
        totals[bucket.variant] = (requests + bucket.requests, up + bucket.up, down + bucket.down)
        series[bucket.variant].append((bucket.start, *totals[bucket.variant]))
    return series


def _utc_axis(moments: list[datetime]) -> np.ndarray:
    """Timestamps as numpy datetime64 (naive UTC), which matplotlib plots as dates."""
    return np.array([moment.replace(tzinfo=None) for moment in moments], dtype="datetime64[s]")


def up_rate_chart(report: ExperimentReport) -> Figure:
    """Cumulative up-rate per variant over time, with its 95% credible band."""
    figure, axes = plt.subplots(figsize=(7, 4))
    for variant, points in sorted(_cumulative_by_variant(report).items()):
        voted = [(start, up, down) for start, _, up, down in points if up + down]
        if not voted:
            continue
        starts = _utc_axis([start for start, _, _ in voted])
        rates = [up / (up + down) for _, up, down in voted]
        low = [beta_quantile(*up_rate_posterior(up, down), 0.025) for _, up, down in voted]
        high = [beta_quantile(*up_rate_posterior(up, down), 0.975) for _, up, down in voted]
        (line,) = axes.plot(starts, rates, marker=".", label=report.label(variant))
        axes.fill_between(starts, low, high, color=line.get_color(), alpha=0.15)
    axes.set(
        xlabel=f"time (UTC, {report.bucket_s}s buckets)",
        ylabel="cumulative up-rate",
        title="Up-rate over time (95% credible band)",
    )
    axes.legend()
    figure.autofmt_xdate()
    return figure


def traffic_chart(report: ExperimentReport) -> Figure:
    """Each variant's share of the requests in each time bucket, stacked."""
    figure, axes = plt.subplots(figsize=(7, 4))
    starts = sorted({bucket.start for bucket in report.timeline})
    variants = sorted({bucket.variant for bucket in report.timeline})
    requests = {(bucket.start, bucket.variant): bucket.requests for bucket in report.timeline}
    totals = [sum(requests.get((start, v), 0) for v in variants) for start in starts]
    shares = [
        [requests.get((start, v), 0) / total for start, total in zip(starts, totals, strict=True)]
        for v in variants
    ]
    if starts:
        axes.stackplot(
            _utc_axis(starts), shares, labels=[report.label(v) for v in variants], alpha=0.8
        )
        axes.set(
            xlabel=f"time (UTC, {report.bucket_s}s buckets)",
            ylabel="share of requests",
            ylim=(0, 1),
            title="Traffic split over time",
        )
    axes.legend(loc="upper left")
    figure.autofmt_xdate()
    return figure


def report_html(report: ExperimentReport) -> str:
    """A page beside the PNGs, with the terminal report's table and sentences; all escaped."""
    headers = "".join(f"<th>{html.escape(column)}</th>" for column in TABLE_COLUMNS)
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in table_rows(report)
    )
    summary = "\n".join(f"<p>{html.escape(line)}</p>" for line in summary_lines(report))
    images = "\n".join(
        f'<figure><img src="{name}" alt="{alt}"></figure>'
        for name, alt in (
            (POSTERIORS_PNG, "Posterior of each up-rate"),
            (UP_RATE_PNG, "Up-rate over time"),
            (TRAFFIC_PNG, "Traffic split over time"),
        )
    )
    stats = report.stats
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pressroom experiment report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}}
td:first-child,th:first-child{{text-align:left}}img{{max-width:100%}}</style></head>
<body><h1>Pressroom experiment report</h1>
<p>Generated {html.escape(stats.generated_at.isoformat())}; {stats.total_requests} requests.</p>
<p><strong>Verdict:</strong> {html.escape(report.verdict)}</p>
<table><thead><tr>{headers}</tr></thead><tbody>
{rows}
</tbody></table>
{summary}
{images}
</body></html>
"""
