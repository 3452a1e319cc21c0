"""The experiment's state from the feedback store: per-variant table, SRM check, verdict.

The statistics themselves (Beta posteriors, P(best), expected loss, the SRM test) come from the
layer's `stats_report` over the store; this module only adds what a reader of the
terminal report needs on top: the difference between the two leaders with its interval,
a plain-language verdict, and the sample size a planned experiment needs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

from pressroom_common.experiment.report import CategoryStats, StatsReport
from pressroom_common.feedback.service import stats_report
from pressroom_common.feedback.store import FeedbackStore, TrafficBucket
from rich.console import Console
from rich.table import Table

# Sample-ratio mismatch below this p-value means the traffic split itself is broken.
SRM_ALARM_P_VALUE = 0.001


@dataclass(frozen=True)
class Difference:
    """Up-rate of `leader` minus that of `runner_up`, with a 95% credible interval."""

    leader: str
    runner_up: str
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class ExperimentReport:
    stats: StatsReport
    timeline: list[TrafficBucket]
    bucket_s: int
    models: dict[str, str]  # variant -> model name
    difference: Difference | None
    verdict: str

    def label(self, variant: str) -> str:
        model = self.models.get(variant)
        return f"{model} ({variant})" if model else variant


def experiment_report(
    store: FeedbackStore, weights: Mapping[str, float], *, bucket_s: int = 60
) -> ExperimentReport:
    stats = stats_report(store, since=None, weights=weights)
    timeline = store.traffic_over_time(bucket_s)
    models = {bucket.variant: bucket.model_name for bucket in timeline}
    difference = leader_difference(stats)
    return ExperimentReport(
        stats=stats,
        timeline=timeline,
        bucket_s=bucket_s,
        models=models,
        difference=difference,
        verdict=verdict(stats, models),
    )


def difference_interval(
    better: tuple[int, int], worse: tuple[int, int], probability: float = 0.95
) -> tuple[float, float, float]:
    """Posterior mean and central interval of rate(better) - rate(worse), from (up, down) counts.

    Each rate is Beta(1 + up, 1 + down); their difference is close to normal once each side has
    a few dozen votes, so the interval is mean +- z * sqrt(var_a + var_b).
    """

    def moments(up: int, down: int) -> tuple[float, float]:
        a, b = 1.0 + up, 1.0 + down
        return a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1.0))

    mean_a, var_a = moments(*better)
    mean_b, var_b = moments(*worse)
    z = NormalDist().inv_cdf(0.5 + probability / 2)
    spread = z * math.sqrt(var_a + var_b)
    estimate = mean_a - mean_b
    return estimate, estimate - spread, estimate + spread


def leader_difference(stats: StatsReport) -> Difference | None:
    """The leader (highest P(best)) against the runner-up; None with fewer than two variants."""
    ranked = sorted(stats.variants, key=lambda item: -stats.verdict.probability_best[item.variant])
    if len(ranked) < 2:
        return None
    leader, runner_up = ranked[0], ranked[1]
    estimate, low, high = difference_interval(
        (leader.up, leader.down), (runner_up.up, runner_up.down)
    )
    return Difference(leader.variant, runner_up.variant, estimate, low, high)


def verdict(stats: StatsReport, models: Mapping[str, str]) -> str:
    """One sentence a reader can act on, for the decision /api/stats returns."""
    decided = stats.verdict
    leader = decided.leader or ""
    name = models.get(leader, leader)
    probability = decided.probability_best.get(leader, 0.0)
    match decided.decision:
        case "one_variant":
            return "Not enough data yet: fewer than two variants have served traffic."
        case "too_few_votes":
            short = [
                item.variant
                for item in stats.variants
                if item.up + item.down < decided.min_votes_per_variant
            ]
            return (
                f"Not enough data yet: {', '.join(short)} "
                f"{'has' if len(short) == 1 else 'have'} fewer than "
                f"{decided.min_votes_per_variant} votes."
            )
        case "winner":
            return f"{name} is better with {_percent(probability)} probability."
        case "no_lift":
            return (
                f"No lift worth having: the up-rates are within {decided.min_lift:.2f} of each "
                f"other with {_percent(decided.probability_no_lift or 0.0)} probability."
            )
        case "too_close":
            needed = sum(decided.votes_needed.values())
            return (
                f"No clear winner yet: {name} leads with P(best) {probability:.3f} "
                f"(deciding needs {decided.decision_probability:.2f}); about {needed} more "
                "votes at the current rates."
            )


def _percent(probability: float) -> str:
    """Whole percent, but never rounded up to a certainty the data do not give."""
    return ">99%" if probability > 0.99 else f"{probability:.0%}"


def sample_size_per_variant(
    baseline_rate: float, difference: float, *, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Votes per variant for a two-sided two-proportion z-test to detect `difference`.

    n = (z_{1-alpha/2} * sqrt(2 p (1-p)) + z_power * sqrt(p1 (1-p1) + p2 (1-p2)))^2 / d^2,
    with p the mean of the two rates (Fleiss' formula without continuity correction).
    """
    if not 0 < baseline_rate < 1:
        raise ValueError(f"baseline_rate must be in (0, 1), got {baseline_rate}")
    other = baseline_rate + difference
    if difference == 0 or not 0 < other < 1:
        raise ValueError(
            f"difference must be non-zero and keep the rate in (0, 1); got {difference} "
            f"on a baseline of {baseline_rate}"
        )
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1); got alpha={alpha}, power={power}")
    normal = NormalDist()
    pooled = (baseline_rate + other) / 2
    numerator = normal.inv_cdf(1 - alpha / 2) * math.sqrt(2 * pooled * (1 - pooled))
    numerator += normal.inv_cdf(power) * math.sqrt(
        baseline_rate * (1 - baseline_rate) + other * (1 - other)
    )
    return math.ceil(numerator**2 / difference**2)


TABLE_COLUMNS = (
    "variant",
    "impressions",
    "votes",
    "up-rate",
    "95% interval",
    "P(best)",
    "expected loss",
    "errors",
    "traffic",
)


def table_rows(report: ExperimentReport) -> list[tuple[str, ...]]:
    """One row of `TABLE_COLUMNS` per variant, formatted for the terminal and the page alike."""
    verdict = report.stats.verdict
    return [
        (
            report.label(item.variant),
            str(item.impressions),
            f"{item.up + item.down} ({item.up} up)",
            "-" if item.up_rate is None else f"{item.up_rate:.3f}",
            f"{item.up_rate_interval.low:.3f} to {item.up_rate_interval.high:.3f}",
            f"{verdict.probability_best[item.variant]:.3f}",
            f"{verdict.expected_loss[item.variant]:.4f}",
            f"{item.error_rate:.1%}",
            f"{item.traffic_share:.1%}",
        )
        for item in report.stats.variants
    ]


def category_columns(report: ExperimentReport) -> list[str]:
    """The by-category table's columns: votes (up-rate) and P(best) per variant, the decision."""
    names = [item.variant for item in report.stats.variants]
    return [
        "category",
        *(f"{name} votes (up-rate)" for name in names),
        *(f"P(best) {name}" for name in names),
        "decision",
    ]


def category_rows(report: ExperimentReport) -> list[tuple[str, ...]]:
    """One row of `category_columns` per category of `/api/stats`'s `by_category`."""
    names = [item.variant for item in report.stats.variants]
    rows = []
    for item in report.stats.by_category:
        counts = {row.variant: row for row in item.variants}
        votes = []
        for name in names:
            row = counts.get(name)
            if row is None or row.up_rate is None:
                votes.append("0")
            else:
                votes.append(f"{row.up + row.down} ({row.up_rate:.3f})")
        probability = [
            f"{item.verdict.probability_best[name]:.3f}"
            if name in item.verdict.probability_best
            else "-"
            for name in names
        ]
        rows.append((item.category, *votes, *probability, category_decision(item)))
    return rows


def category_decision(item: CategoryStats) -> str:
    """A category's decision in a few words; `≠ overall` marks a winner the overall verdict
    does not have."""
    decided = item.verdict
    match decided.decision:
        case "winner":
            turned = " (≠ overall)" if item.disagrees_with_overall else ""
            return f"{decided.leader} wins{turned}"
        case "too_close":
            return f"too close ({decided.leader} leads)"
        case "no_lift":
            return "no lift"
        case "too_few_votes":
            return "too few votes"
        case "one_variant":
            return "one variant"


def disagreement_lines(report: ExperimentReport) -> list[str]:
    """One sentence per category whose winner is not the overall leader."""
    overall = report.label(report.stats.verdict.leader or "")
    lines = []
    for item in report.stats.by_category:
        winner = item.verdict.leader
        if item.disagrees_with_overall and winner is not None:
            lines.append(
                f"In {item.category}, {report.label(winner)} wins (P(best) "
                f"{item.verdict.probability_best[winner]:.3f}) although {overall} leads overall."
            )
    return lines


def summary_lines(report: ExperimentReport) -> list[str]:
    """The sentences under the table: the leaders' difference, the SRM check, and any category
    whose winner is not the overall leader."""
    lines = []
    if report.difference is not None:
        diff = report.difference
        lines.append(
            f"Up-rate difference {report.label(diff.leader)} minus {report.label(diff.runner_up)}: "
            f"{diff.estimate:+.3f} (95% interval {diff.low:+.3f} to {diff.high:+.3f})."
        )
    lines.append(srm_line(report.stats))
    lines.extend(disagreement_lines(report))
    return lines


def print_report(report: ExperimentReport, console: Console) -> None:
    table = Table(title=f"Experiment: {report.stats.total_requests} requests", title_justify="left")
    for column in TABLE_COLUMNS:
        table.add_column(column, justify="left" if column == "variant" else "right")
    for row in table_rows(report):
        table.add_row(*row)
    console.print(table)
    if report.stats.by_category:
        by_category = Table(
            title="By category (the same rule on each category's votes)", title_justify="left"
        )
        for column in category_columns(report):
            by_category.add_column(column, justify="left" if column == "category" else "right")
        for row in category_rows(report):
            by_category.add_row(*row)
        console.print(by_category)
    for line in summary_lines(report):
        console.print(line)
    console.print(f"[bold]Verdict:[/] {report.verdict}")


def srm_line(stats: StatsReport) -> str:
    p_value = stats.verdict.sample_ratio_mismatch_p_value
    weights = ", ".join(f"{name}={weight:g}" for name, weight in stats.verdict.weights.items())
    if p_value is None:
        return f"Sample-ratio check (weights {weights}): no weight-routed traffic to test."
    status = "MISMATCH: the split is broken" if p_value < SRM_ALARM_P_VALUE else "ok"
    return f"Sample-ratio check (weights {weights}): p = {p_value:.4g} ({status})."
