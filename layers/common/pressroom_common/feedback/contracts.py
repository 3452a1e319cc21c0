"""The store's records: what one served response and one vote look like at the boundary."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from pressroom_common.generation.contracts import without_nul


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


# A token is 43 characters (base64url of an HMAC-SHA256); the bound only keeps bodies small.
VOTE_TOKEN_MAX_LENGTH = 128

GenerationId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(without_nul),
]


class FeedbackRequest(BaseModel):
    """`POST /api/feedback` body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generation_id: GenerationId = Field(description="The `generation_id` of a generate response")
    vote: Vote
    # Optional in the schema so that a missing token answers 403 `vote_not_allowed`, like a
    # forged one, rather than a 422: the reader did nothing malformed, they may not vote.
    vote_token: str | None = Field(
        default=None,
        max_length=VOTE_TOKEN_MAX_LENGTH,
        description="The `vote_token` of the same generate response; required for the vote "
        "to count, with the same reader identity (`X-User-Id`) the headline was served to",
    )


class FeedbackResponse(BaseModel):
    """The stored vote (the caller's user hash is not echoed)."""

    generation_id: str
    vote: Vote
    created_at: datetime
    updated_at: datetime = Field(description="Moves when the same user votes again")
