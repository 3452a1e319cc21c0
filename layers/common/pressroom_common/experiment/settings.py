"""The experiment's vocabulary, in one place: what may choose a variant (`Strategy`), the variants
and their weights, the round, and the parameters of Thompson sampling and of the guardrail.

The settings classes here read the experiment's environment variables (`ROUTING_STRATEGY`,
`VARIANTS`, `VARIANT_WEIGHTS`, `EXPERIMENT_STARTED_AT`, `THOMPSON_*`, `GUARDRAIL_*`); each
function's settings compose the ones it needs (`generation.settings.GenerateSettings`,
`feedback.settings.FeedbackSettings`), so every variable is declared once, with its default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Strategy(StrEnum):
    """What chose a generation's variant: the API answers it, the store keeps it."""

    FIXED = "fixed"  # the configured weights, sticky per reader (`routing.FixedWeights`)
    THOMPSON = "thompson"  # Thompson sampling on the round's votes (`adaptive.ThompsonSampling`)
    OVERRIDE = "override"  # the request named its variant
    FALLBACK = "fallback"  # the assigned variant failed; another one answered


# What `ROUTING_STRATEGY` may name: the strategies a deployment routes by.
RoutingStrategyName = Literal[Strategy.FIXED, Strategy.THOMPSON]
# The strategy that splits traffic by the configured weights (`routing.FixedWeights`); only its
# traffic is tested for sample-ratio mismatch (overrides and adaptive routing skew the split).
WEIGHTED_STRATEGY = Strategy.FIXED


@dataclass(frozen=True)
class ThompsonParameters:
    """Thompson sampling's parameters and their defaults (see `adaptive.ThompsonSampling`)."""

    warmup_votes: int = 20
    top_two_probability: float = 0.5
    refresh_s: float = 5.0


@dataclass(frozen=True)
class GuardrailThresholds:
    """When the guardrail drains a variant, and for how long (see `adaptive.Guardrail`)."""

    window_s: float = 60.0
    min_requests: int = 20
    max_error_rate: float = 0.5
    max_p95_latency_ms: float = 10_000.0
    cooldown_s: float = 120.0


class VariantConfig(BaseModel):
    """One generator variant: where it is served, which model it serves, its traffic weight."""

    model_config = {"frozen": True}

    endpoint_name: str = Field(min_length=1)
    model_name: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    weight: float = Field(ge=0)


class RoundSettings(BaseSettings):
    """`EXPERIMENT_STARTED_AT`: when the experiment round began (ISO 8601, UTC when it has no
    zone); a round counts only its own generations. Empty or unset: all time."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    experiment_started_at: datetime | None = None

    @field_validator("experiment_started_at", mode="before")
    @classmethod
    def _empty_is_all_time(cls, value: object) -> object:
        # The templates pass the parameter through, so "no round" arrives as "".
        return None if value == "" else value

    @field_validator("experiment_started_at")
    @classmethod
    def _utc_when_zoneless(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


_THOMPSON = ThompsonParameters()
_GUARDRAIL = GuardrailThresholds()


class ThompsonSettings(BaseSettings):
    """Thompson sampling (`ROUTING_STRATEGY=thompson`): the weights split traffic until every
    variant has `warmup_votes` votes (since `experiment_started_at`), then the leader of a
    posterior draw serves with `top_two_probability`, its runner-up otherwise (1.0: plain
    Thompson sampling); the vote counts are re-read at most every `refresh_s`."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    thompson_warmup_votes: int = Field(default=_THOMPSON.warmup_votes, ge=0)
    thompson_top_two_probability: float = Field(default=_THOMPSON.top_two_probability, ge=0, le=1)
    thompson_refresh_s: float = Field(default=_THOMPSON.refresh_s, gt=0)

    @property
    def thompson(self) -> ThompsonParameters:
        return ThompsonParameters(
            warmup_votes=self.thompson_warmup_votes,
            top_two_probability=self.thompson_top_two_probability,
            refresh_s=self.thompson_refresh_s,
        )


class GuardrailSettings(BaseSettings):
    """The guardrail (any strategy): drain a variant whose error rate or p95 model latency over
    the sliding window crosses a threshold, for a cool-down; the last healthy variant stays."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    guardrail_enabled: bool = True
    guardrail_window_s: float = Field(default=_GUARDRAIL.window_s, gt=0)
    guardrail_min_requests: int = Field(default=_GUARDRAIL.min_requests, ge=1)
    guardrail_max_error_rate: float = Field(default=_GUARDRAIL.max_error_rate, gt=0, le=1)
    guardrail_max_p95_latency_ms: float = Field(default=_GUARDRAIL.max_p95_latency_ms, gt=0)
    guardrail_cooldown_s: float = Field(default=_GUARDRAIL.cooldown_s, gt=0)

    @property
    def guardrail(self) -> GuardrailThresholds:
        return GuardrailThresholds(
            window_s=self.guardrail_window_s,
            min_requests=self.guardrail_min_requests,
            max_error_rate=self.guardrail_max_error_rate,
            max_p95_latency_ms=self.guardrail_max_p95_latency_ms,
            cooldown_s=self.guardrail_cooldown_s,
        )


class RoutingSettings(RoundSettings, ThompsonSettings, GuardrailSettings):
    """What routes a generate request: `ROUTING_STRATEGY`, and `VARIANTS` (JSON: name →
    `VariantConfig`), whose weights are the ones `VARIANT_WEIGHTS` gives the feedback function."""

    routing_strategy: RoutingStrategyName = Strategy.FIXED
    variants: dict[str, VariantConfig]

    @model_validator(mode="after")
    def _variants_routable(self) -> RoutingSettings:
        if not self.variants:
            raise ValueError("VARIANTS must name at least one variant")
        if sum(variant.weight for variant in self.variants.values()) <= 0:
            raise ValueError("VARIANTS weights must add up to more than 0")
        return self

    @property
    def variant_weights(self) -> dict[str, float]:
        return {name: variant.weight for name, variant in self.variants.items()}


class VariantWeightSettings(RoundSettings):
    """`VARIANT_WEIGHTS` (JSON, e.g. `{"A": 1, "B": 1}`): the weights the fixed-weight router
    splits traffic by (the generate function's `VARIANTS` weights), which the
    sample-ratio-mismatch test checks."""

    variant_weights: dict[str, float]

    @field_validator("variant_weights")
    @classmethod
    def _weights_testable(cls, weights: dict[str, float]) -> dict[str, float]:
        if any(weight < 0 for weight in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("weights must be >= 0 and add up to more than 0")
        return weights
