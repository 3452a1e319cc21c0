"""The `/api/stats` response: descriptive statistics per variant and the experiment verdict."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


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


class StatsReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    since: datetime | None = Field(description="Only generations created at or after this time")
    generated_at: datetime
    total_requests: int
    variants: list[VariantStats]
    verdict: ExperimentVerdict
