"""The `/api/stats` response: descriptive statistics per variant and the experiment verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The one rule that calls an A/B winner; every client shows the decision /api/stats returns.
# Below this many votes on some variant there is no decision: P(best) from a handful of votes
# swings too much to act on.
MIN_VOTES_PER_VARIANT = 30
DECISION_PROBABILITY = 0.95
Decision = Literal["one_variant", "too_few_votes", "winner", "too_close"]


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
    decision: Decision = Field(
        description=(
            "one_variant: fewer than two variants have traffic; too_few_votes: some variant has "
            "fewer than min_votes_per_variant votes; winner: the leader's P(best) reaches "
            "decision_probability; too_close: it does not yet"
        )
    )
    leader: str | None = Field(description="The variant most likely best; null without traffic")
    min_votes_per_variant: int = Field(description="Votes each variant needs before a decision")
    decision_probability: float = Field(description="P(best) at which the leader wins")


class StatsReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    since: datetime | None = Field(description="Only generations created at or after this time")
    generated_at: datetime
    total_requests: int
    variants: list[VariantStats]
    verdict: ExperimentVerdict


def decide(
    variants: Sequence[VariantStats], probability_best: Mapping[str, float]
) -> tuple[Decision, str | None]:
    """The experiment's decision and its leader (the variant most likely best)."""
    leader = max(probability_best, key=lambda name: probability_best[name], default=None)
    if len(variants) < 2:
        return "one_variant", leader
    if any(item.up + item.down < MIN_VOTES_PER_VARIANT for item in variants):
        return "too_few_votes", leader
    if leader is not None and probability_best[leader] >= DECISION_PROBABILITY:
        return "winner", leader
    return "too_close", leader
