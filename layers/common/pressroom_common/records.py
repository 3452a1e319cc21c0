"""What the feedback store keeps, and the one rule its text obeys.

Every served response is a `GenerationRecord` and every vote a `VoteRecord`: the generate flow
writes the first, the vote flow the second, and neither needs the other's package for it.

PostgreSQL text cannot hold U+0000 (SQLite can), so no stored text may contain it, on any
backend: text a client sends is refused (`without_nul`, a 422 on the field that would be
stored), and text a model writes is cleaned (`storable`), so the reader still gets a headline.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

NUL = "\x00"


def without_nul(text: str) -> str:
    """Refuse text the store could not keep (a pydantic validator of request fields)."""
    if NUL in text:
        raise ValueError("must not contain the NUL character (U+0000)")
    return text


def storable(text: str) -> str:
    """Text we did not write (a model's answer), without what the store could not keep."""
    return text.replace(NUL, "")


class Vote(StrEnum):
    UP = "up"
    DOWN = "down"


class GenerationRecord(BaseModel):
    """Every served response, failed ones included (empty `text`, an `error_code`)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, max_length=64)
    created_at: AwareDatetime
    user_hash: str = Field(min_length=1, max_length=64)
    prompt: str
    text: str
    variant: str = Field(min_length=1, max_length=32)
    model_name: str = Field(max_length=64)
    model_version: str = Field(max_length=64)
    strategy: str = Field(max_length=32)
    parameters: dict[str, Any] = Field(default_factory=dict)
    category_label: str | None = Field(default=None, max_length=32)
    category_score: float | None = None
    latency_model_ms: float = Field(ge=0)
    latency_classifier_ms: float | None = Field(default=None, ge=0)
    latency_total_ms: float = Field(ge=0)
    error_code: str | None = Field(default=None, max_length=64)


class VoteRecord(BaseModel):
    """The vote as stored: one per generation and user; `updated_at` moves when it is replaced."""

    model_config = ConfigDict(frozen=True)

    generation_id: str
    user_hash: str
    vote: Vote
    created_at: datetime
    updated_at: datetime
    variant: str = Field(description="The variant of the voted generation (for metrics)")
