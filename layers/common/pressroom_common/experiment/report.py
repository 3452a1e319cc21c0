"""The `/api/stats` response: descriptive statistics per variant and the experiment verdict,
built (`build_report`) from the totals the feedback store aggregates (`ExperimentTotals`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pressroom_common.experiment import statistics

# The one rule that ends an A/B round; every client shows the decision /api/stats returns.
# Below this many votes on some variant there is no decision: P(best) from a handful of votes
# swings too much to act on.
MIN_VOTES_PER_VARIANT = 30
DECISION_PROBABILITY = 0.95
# The smallest difference in up-rate worth acting on. When the up-rates are within it with
# DECISION_PROBABILITY, no lift worth detecting is there to find: the round stops (futility).
MIN_LIFT = 0.07
Decision = Literal["one_variant", "too_few_votes", "winner", "no_lift", "too_close"]
DECISION_DESCRIPTION = (
    "one_variant: fewer than two variants have traffic; too_few_votes: some variant has "
    "fewer than min_votes_per_variant votes; winner: the leader's P(best) reaches "
    "decision_probability; no_lift: probability_no_lift reaches decision_probability "
    "(futility: no difference worth min_lift is there to find); too_close: neither yet"
)
# The category `by_category` reports generations without a classifier label under (the
# classifier abstained or did not answer, or the generation failed).
UNCATEGORISED = "uncategorised"


class CredibleInterval(BaseModel):
    model_config = ConfigDict(frozen=True)

    low: float = Field(description="2.5% quantile of Beta(1 + up, 1 + down)")
    high: float = Field(description="97.5% quantile of Beta(1 + up, 1 + down)")


class LatencyPercentiles(BaseModel):
    model_config = ConfigDict(frozen=True)

    p50: float | None = Field(description="Median total latency of successful requests, ms")
    p95: float | None = Field(
        description="95th percentile total latency of successful requests, ms"
    )


class VariantStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    variant: str
    requests: int = Field(description="Generations served by this variant, failed ones included")
    impressions: int = Field(description="Successful generations (a headline was shown)")
    errors: int
    error_rate: float = Field(description="errors / requests")
    traffic_share: float = Field(description="This variant's share of all requests")
    up: int
    down: int
    up_rate: float | None = Field(description="up / (up + down); null before the first vote")
    up_rate_interval: CredibleInterval = Field(
        description="95% equal-tailed credible interval of the up-rate (uniform prior)"
    )
    latency_ms: LatencyPercentiles


class ExperimentVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    probability_best: dict[str, float] = Field(
        description="P(variant has the highest up-rate) under the Beta posteriors"
    )
    expected_loss: dict[str, float] = Field(
        description="E[best up-rate - this variant's up-rate]: what choosing it would cost"
    )
    sample_ratio_mismatch_p_value: float | None = Field(
        description=(
            "Chi-square goodness of fit of weight-routed traffic to the configured weights; "
            "a small value (< 0.001) means the split is broken. Null without a test to run."
        )
    )
    weights: dict[str, float] = Field(description="The configured traffic weights tested")
    probability_no_lift: float | None = Field(
        description=(
            "P(the leader's up-rate is within min_lift of every other variant's); null with "
            "fewer than two variants"
        )
    )
    decision: Decision = Field(description=DECISION_DESCRIPTION)
    leader: str | None = Field(description="The variant most likely best; null without traffic")
    votes_needed: dict[str, int] = Field(
        description=(
            "More votes each variant likely needs before a decision, if the up-rates stay as "
            "they are (a sample-size estimate, 0 once decided)"
        )
    )
    min_votes_per_variant: int = Field(description="Votes each variant needs before a decision")
    decision_probability: float = Field(description="P(best) at which the leader wins")
    min_lift: float | None = Field(
        description="The smallest up-rate difference worth detecting; null: no futility stop"
    )


class CategoryVariantStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    variant: str
    impressions: int = Field(description="Successful generations of this variant in the category")
    up: int
    down: int
    up_rate: float | None = Field(
        description="up / (up + down) in the category; null before its first vote"
    )


class CategoryVerdict(BaseModel):
    """The overall verdict's rule (`judge`, the same thresholds) on one category's votes."""

    model_config = ConfigDict(frozen=True)

    decision: Decision = Field(description=DECISION_DESCRIPTION + " (in this category)")
    leader: str | None = Field(description="The variant most likely best in this category")
    probability_best: dict[str, float] = Field(
        description="P(variant has the highest up-rate in this category)"
    )
    expected_loss: dict[str, float] = Field(
        description="E[best up-rate - this variant's up-rate] in this category"
    )
    probability_no_lift: float | None = Field(
        description="P(the leader's up-rate is within min_lift of every other's) in this category"
    )
    votes_needed: dict[str, int] = Field(
        description="More votes each variant likely needs in this category before a decision"
    )


class CategoryStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    category: str = Field(
        description=(
            "The classifier's label of the generations; 'uncategorised' for those without one "
            "(the classifier abstained or did not answer, or the generation failed)"
        )
    )
    variants: list[CategoryVariantStats] = Field(
        description="Every variant of the report, with zeros where it served none of the category"
    )
    verdict: CategoryVerdict
    disagrees_with_overall: bool = Field(
        description=(
            "True when this category's decision is 'winner' and its winner is not the overall "
            "verdict's leader: where the models' ranking turns, which a client shows"
        )
    )


class StatsReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    since: datetime | None = Field(description="Only generations created at or after this time")
    generated_at: datetime
    total_requests: int
    variants: list[VariantStats]
    verdict: ExperimentVerdict
    by_category: list[CategoryStats] = Field(
        description=(
            "The votes and the verdict per classifier category, by the same rule and "
            "thresholds as `verdict`; categories by name, 'uncategorised' last"
        )
    )


@dataclass(frozen=True)
class VariantTotals:
    """One variant's counts over a window, and its successful requests' latency percentiles."""

    variant: str
    requests: int
    errors: int
    weighted_requests: int  # routed by the weights (`settings.WEIGHTED_STRATEGY`)
    up: int
    down: int
    latency_p50_ms: float | None = None  # None: no successful request
    latency_p95_ms: float | None = None

    @property
    def impressions(self) -> int:
        return self.requests - self.errors


CategoryCounts = Mapping[str, tuple[int, int, int]]
"""variant -> (impressions, up, down) in one category."""


@dataclass(frozen=True)
class ExperimentTotals:
    """What a report is built from: the store's totals over one window."""

    variants: Sequence[VariantTotals]  # by variant name
    categories: Mapping[str | None, CategoryCounts]  # by classifier label; None: no label


@dataclass(frozen=True)
class DecisionRules:
    """When a round is decided; the defaults are the API's (`MIN_VOTES_PER_VARIANT`, ...)."""

    min_votes_per_variant: int = MIN_VOTES_PER_VARIANT
    decision_probability: float = DECISION_PROBABILITY
    min_lift: float | None = MIN_LIFT  # None: no futility stop (the winner rule alone)


@dataclass(frozen=True)
class Judgement:
    """The verdict's figures, from the votes alone."""

    decision: Decision
    leader: str | None
    probability_best: dict[str, float]
    expected_loss: dict[str, float]
    probability_no_lift: float | None
    votes_needed: dict[str, int]


def judge(
    votes: Mapping[str, tuple[int, int]], rules: DecisionRules = DecisionRules()
) -> Judgement:
    """Decide a round from each variant's (up, down) votes.

    The checks, in order: two variants; `min_votes_per_variant` each; the leader's P(best)
    reaches `decision_probability` (winner); the leader is within `min_lift` of every other
    variant with that probability (no_lift); else too close.
    """
    posteriors = {name: statistics.up_rate_posterior(*counts) for name, counts in votes.items()}
    # One grid for both integrals (with two variants P(no lift) reads the same two posteriors).
    grid = statistics.PosteriorGrid(posteriors.values())
    best = statistics.best_arm_probabilities(posteriors, grid=grid)
    probability_best = {name: arm.probability_best for name, arm in best.items()}
    leader = max(probability_best, key=lambda name: probability_best[name], default=None)
    others = [name for name in votes if name != leader]
    no_lift = (
        min(
            statistics.probability_within(
                posteriors[leader], posteriors[name], rules.min_lift, grid=grid
            )
            for name in others
        )
        if leader is not None and others and rules.min_lift is not None
        else None
    )
    decision: Decision
    if len(votes) < 2:
        decision = "one_variant"
    elif any(up + down < rules.min_votes_per_variant for up, down in votes.values()):
        decision = "too_few_votes"
    elif leader is not None and probability_best[leader] >= rules.decision_probability:
        decision = "winner"
    elif no_lift is not None and no_lift >= rules.decision_probability:
        decision = "no_lift"
    else:
        decision = "too_close"
    return Judgement(
        decision=decision,
        leader=leader,
        probability_best=probability_best,
        expected_loss={name: arm.expected_loss for name, arm in best.items()},
        probability_no_lift=no_lift,
        votes_needed=votes_needed(votes, leader, decision, rules),
    )


def judge_categories(
    counts: Mapping[str, Mapping[str, tuple[int, int, int]]],
    overall_leader: str | None,
    rules: DecisionRules = DecisionRules(),
) -> list[CategoryStats]:
    """The verdict per category, from category -> variant -> (impressions, up, down).

    Each category is judged over every variant that appears in any category (zeros where a
    variant served none of it), so the minimum-votes rule holds per category too.
    """
    names = sorted({variant for by_variant in counts.values() for variant in by_variant})
    ordered = sorted(counts, key=lambda category: (category == UNCATEGORISED, category))
    report = []
    for category in ordered:
        by_variant = {name: counts[category].get(name, (0, 0, 0)) for name in names}
        judgement = judge({name: (up, down) for name, (_, up, down) in by_variant.items()}, rules)
        report.append(
            CategoryStats(
                category=category,
                variants=[
                    CategoryVariantStats(
                        variant=name,
                        impressions=impressions,
                        up=up,
                        down=down,
                        up_rate=up / (up + down) if up + down else None,
                    )
                    for name, (impressions, up, down) in by_variant.items()
                ],
                verdict=CategoryVerdict(
                    decision=judgement.decision,
                    leader=judgement.leader,
                    probability_best=judgement.probability_best,
                    expected_loss=judgement.expected_loss,
                    probability_no_lift=judgement.probability_no_lift,
                    votes_needed=judgement.votes_needed,
                ),
                disagrees_with_overall=(
                    judgement.decision == "winner" and judgement.leader != overall_leader
                ),
            )
        )
    return report


def votes_needed(
    votes: Mapping[str, tuple[int, int]],
    leader: str | None,
    decision: Decision,
    rules: DecisionRules,
) -> dict[str, int]:
    """More votes per variant until a decision if the up-rates stay as they are.

    In the normal approximation, the difference d between the leader's up-rate and another's
    has standard error s = sqrt(v / n) with n votes each (v the sum of the two rates'
    p(1 - p)). The round is decided once s is small enough for either rule: P(best) =
    Phi(d / s) reaching `decision_probability`, or P(|difference| < min_lift) =
    Phi((min_lift - d) / s) - Phi((-min_lift - d) / s) reaching it. So n = v / s^2 for the
    larger of the two standard errors.
    """
    if decision in ("winner", "no_lift", "one_variant") or leader is None:
        return dict.fromkeys(votes, 0)
    rates = {name: (1 + up) / (2 + up + down) for name, (up, down) in votes.items()}
    planned = dict.fromkeys(votes, rules.min_votes_per_variant)
    for name in votes:
        if name == leader:
            continue
        difference = max(0.0, rates[leader] - rates[name])
        error = _decisive_standard_error(difference, rules)
        if error == 0.0:  # equal rates and no futility rule: no finite plan
            continue
        variance = sum(rates[each] * (1 - rates[each]) for each in (leader, name))
        needed = math.ceil(variance / error**2)
        for each in (leader, name):
            planned[each] = max(planned[each], needed)
    return {name: max(0, planned[name] - sum(votes[name])) for name in votes}


def _decisive_standard_error(difference: float, rules: DecisionRules) -> float:
    """The largest standard error of `difference` at which one of the rules decides."""
    normal = NormalDist()
    winner = difference / normal.inv_cdf(rules.decision_probability)
    if rules.min_lift is None or difference >= rules.min_lift:
        return winner
    margin = rules.min_lift

    def no_lift(error: float) -> float:
        return normal.cdf((margin - difference) / error) - normal.cdf(
            (-margin - difference) / error
        )

    low, high = 0.0, margin  # no_lift(error) falls as the error grows
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (
            (middle, high) if no_lift(middle) >= rules.decision_probability else (low, middle)
        )
    return max(winner, low)


def build_report(
    totals: ExperimentTotals, *, since: datetime | None, weights: Mapping[str, float]
) -> StatsReport:
    """The report over `totals` (the generations created since `since`): each variant's
    statistics, the verdict, and the verdict per category; `weights` are the configured ones the
    weight-routed traffic is tested against (sample-ratio mismatch)."""
    variants = totals.variants
    total_requests = sum(item.requests for item in variants)
    posteriors = {
        item.variant: statistics.up_rate_posterior(item.up, item.down) for item in variants
    }
    srm_p_value = statistics.sample_ratio_mismatch_p_value(
        {item.variant: item.weighted_requests for item in variants}, weights
    )
    rules = DecisionRules()
    judgement = judge({item.variant: (item.up, item.down) for item in variants}, rules)
    categories = {
        UNCATEGORISED if label is None else label: counts
        for label, counts in totals.categories.items()
    }
    return StatsReport(
        since=since,
        generated_at=datetime.now(UTC),
        total_requests=total_requests,
        variants=[
            VariantStats(
                variant=item.variant,
                requests=item.requests,
                impressions=item.impressions,
                errors=item.errors,
                error_rate=item.errors / item.requests,
                traffic_share=item.requests / total_requests,
                up=item.up,
                down=item.down,
                up_rate=item.up / (item.up + item.down) if item.up + item.down else None,
                up_rate_interval=CredibleInterval(
                    low=statistics.beta_quantile(*posteriors[item.variant], 0.025),
                    high=statistics.beta_quantile(*posteriors[item.variant], 0.975),
                ),
                latency_ms=LatencyPercentiles(p50=item.latency_p50_ms, p95=item.latency_p95_ms),
            )
            for item in variants
        ],
        verdict=ExperimentVerdict(
            probability_best=judgement.probability_best,
            expected_loss=judgement.expected_loss,
            sample_ratio_mismatch_p_value=srm_p_value,
            weights=dict(weights),
            probability_no_lift=judgement.probability_no_lift,
            decision=judgement.decision,
            leader=judgement.leader,
            votes_needed=judgement.votes_needed,
            min_votes_per_variant=rules.min_votes_per_variant,
            decision_probability=rules.decision_probability,
            min_lift=rules.min_lift,
        ),
        by_category=judge_categories(categories, judgement.leader, rules),
    )
