"""Environment configuration of the functions that use the store, parsed once per cold start."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pressroom_common.settings import ApiSettings


class StoreSettings(BaseSettings):
    """`DATABASE_URL`: one of the forms `pressroom_common.store.engines` documents."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    database_url: str = Field(min_length=1)


class FeedbackSettings(ApiSettings, StoreSettings):
    """The feedback function: `VARIANT_WEIGHTS` is JSON, e.g. `{"A": 1, "B": 1}` — the weights
    the fixed-weight router splits traffic by, which the sample-ratio-mismatch test checks."""

    variant_weights: dict[str, float]

    @field_validator("variant_weights")
    @classmethod
    def _weights_testable(cls, weights: dict[str, float]) -> dict[str, float]:
        if any(weight < 0 for weight in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("weights must be >= 0 and add up to more than 0")
        return weights
