"""Environment configuration of every function, parsed once per cold start into pydantic
settings.

Templates set these variables on every function; the local gateway passes the same ones.
Field names map to upper-case environment variables (`cors_allowed_origins` →
`CORS_ALLOWED_ORIGINS`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

HostingMode = Literal["realtime", "serverless"]
RoutingStrategyName = Literal["fixed", "thompson"]
# The strategy that splits traffic by the configured weights (routing.FixedWeights); only its
# traffic is tested for sample-ratio mismatch (overrides and adaptive routing skew the split).
WEIGHTED_STRATEGY: RoutingStrategyName = "fixed"


class StoreSettings(BaseSettings):
    """`DATABASE_URL`: one of the forms `pressroom_common.feedback.store.engines` documents."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    database_url: str = Field(min_length=1)


class ReaderKeySettings(BaseSettings):
    """Where the reader key lives: `READER_KEY_SECRET_ID` (a Secrets Manager secret, on AWS) or
    `READER_KEY_FILE` (a file, locally). Exactly one is set."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    reader_key_secret_id: str = ""
    reader_key_file: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> ReaderKeySettings:
        if bool(self.reader_key_secret_id) == bool(self.reader_key_file):
            raise ValueError(
                "set exactly one of READER_KEY_SECRET_ID (Secrets Manager) and READER_KEY_FILE"
            )
        return self


class ApiSettings(BaseSettings):
    """What every HTTP function needs: its stage and the origins allowed by CORS."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    stage: str = "local"
    # Comma-separated; empty means same-origin only (the site and the API share one origin).
    cors_allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("cors_allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(origin.strip() for origin in value.split(",") if origin.strip())
        return value


class ExperimentSettings(BaseSettings):
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


class VariantConfig(BaseModel):
    """One generator variant: where it is served and which model it serves."""

    model_config = {"frozen": True}

    endpoint_name: str = Field(min_length=1)
    model_name: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    weight: float = Field(ge=0)


class GenerateSettings(ApiSettings, StoreSettings, ReaderKeySettings, ExperimentSettings):
    """Configuration of the generate function (`VARIANTS` is JSON: name → `VariantConfig`)."""

    hosting_mode: HostingMode = "realtime"
    routing_strategy: RoutingStrategyName = "fixed"
    variants: dict[str, VariantConfig]
    classifier_endpoint_name: str | None = None

    # API Gateway gives up after 29 s; answering 504 well before that keeps the error ours.
    generate_deadline_s: float = Field(default=20.0, gt=0, le=27)
    model_connect_timeout_s: float = Field(default=2.0, gt=0)
    # One generator attempt; shorter than the deadline so a slow variant leaves time to fall back.
    model_attempt_timeout_s: float = Field(default=12.0, gt=0)
    model_max_attempts: int = Field(default=3, ge=1, le=10)
    classifier_timeout_s: float = Field(default=2.0, gt=0)
    health_timeout_s: float = Field(default=3.0, gt=0)

    # Thompson sampling (ROUTING_STRATEGY=thompson): weights split traffic until every variant
    # has `warmup_votes` votes (since `experiment_started_at`), then the leader of a posterior
    # draw serves with `top_two_probability`, its runner-up otherwise (1.0: plain Thompson
    # sampling); feedback counts are re-read at most every `refresh_s`.
    thompson_warmup_votes: int = Field(default=20, ge=0)
    thompson_top_two_probability: float = Field(default=0.5, ge=0, le=1)
    thompson_refresh_s: float = Field(default=5.0, gt=0)
    # Guardrail (any strategy): drain a variant whose error rate or p95 model latency over the
    # sliding window crosses a threshold, for a cool-down; the last healthy variant stays.
    guardrail_enabled: bool = True
    guardrail_window_s: float = Field(default=60.0, gt=0)
    guardrail_min_requests: int = Field(default=20, ge=1)
    guardrail_max_error_rate: float = Field(default=0.5, gt=0, le=1)
    guardrail_max_p95_latency_ms: float = Field(default=10_000.0, gt=0)
    guardrail_cooldown_s: float = Field(default=120.0, gt=0)

    @model_validator(mode="after")
    def _variants_routable(self) -> GenerateSettings:
        if not self.variants:
            raise ValueError("VARIANTS must name at least one variant")
        if sum(variant.weight for variant in self.variants.values()) <= 0:
            raise ValueError("VARIANTS weights must add up to more than 0")
        return self


class FeedbackSettings(ApiSettings, StoreSettings, ReaderKeySettings, ExperimentSettings):
    """The feedback function: `VARIANT_WEIGHTS` is JSON, e.g. `{"A": 1, "B": 1}` — the weights
    the fixed-weight router splits traffic by, which the sample-ratio-mismatch test checks."""

    variant_weights: dict[str, float]

    @field_validator("variant_weights")
    @classmethod
    def _weights_testable(cls, weights: dict[str, float]) -> dict[str, float]:
        if any(weight < 0 for weight in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("weights must be >= 0 and add up to more than 0")
        return weights
