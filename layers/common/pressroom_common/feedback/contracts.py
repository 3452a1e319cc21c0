"""Request and response bodies of `POST /api/feedback`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from pressroom_common.records import Vote, without_nul

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
