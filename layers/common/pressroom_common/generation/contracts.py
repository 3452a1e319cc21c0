"""Request and response bodies of the HTTP API, shared by handlers and tests."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from pressroom_common.records import without_nul


def not_blank(text: str) -> str:
    """Trim as Python does: pydantic's trimming keeps the C0 separators U+001C-U+001F."""
    if not text.strip():
        raise ValueError("must contain more than whitespace")
    return text.strip()


Prompt = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    AfterValidator(without_nul),
    AfterValidator(not_blank),
]
VariantName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")]


class GenerationParameters(BaseModel):
    """Sampling parameters; the bounds keep one request's cost predictable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(default=24, ge=1, le=64)
    temperature: float = Field(default=0.8, gt=0, le=2)
    top_k: int = Field(default=50, ge=0, le=200)
    top_p: float = Field(default=0.95, gt=0, le=1)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)


class GenerateRequest(GenerationParameters):
    prompt: Prompt
    variant: VariantName | None = Field(
        default=None, description="Pin a variant (overrides the routing strategy)"
    )

    def parameters(self) -> GenerationParameters:
        return GenerationParameters.model_validate(self.model_dump(exclude={"prompt", "variant"}))


class ModelRef(BaseModel):
    name: str
    version: str


class Category(BaseModel):
    label: str
    score: float = Field(description="The classifier's calibrated probability of the label")


class ClassifierAnswer(BaseModel):
    """What the classifier endpoint answers per headline: its most likely category and that
    category's calibrated probability, with no label when it abstains (below its threshold)."""

    label: str | None
    score: float = Field(ge=0, le=1)


class LatencyMs(BaseModel):
    model: float
    classifier: float | None
    total: float


class GenerateResponse(BaseModel):
    generation_id: str
    prompt: str
    text: str = Field(
        description="The model's continuation, as the Hugging Face text-generation pipeline "
        "answers it: a leading space when the model began a new word, none when it went on "
        "with the prompt's last word"
    )
    headline: str = Field(
        description="The full headline a reader sees: the prompt, then the continuation"
    )
    variant: str
    model: ModelRef
    strategy: str
    category: Category | None = Field(
        description="The headline's news category and its calibrated probability; null when the "
        "classifier abstains (not confident enough: `category_confidence` is then below the "
        "model's threshold) or when no classifier answered (`category_confidence` null too)"
    )
    category_confidence: float | None = Field(
        default=None,
        description="The classifier's calibrated probability of its most likely category, "
        "shown or not: equal to `category.score` when a category is shown, below the model's "
        "threshold when it abstains; null when no classifier answered",
    )
    latency_ms: LatencyMs
    created_at: datetime
    vote_token: str | None = Field(
        default=None,
        description="Send it back with a vote on this headline: it lets the reader it was "
        "served to, and no one else, vote (null for a reader without an id, who cannot vote)",
    )


DependencyStatus = Literal["ok", "unavailable"]


class DependencyHealth(BaseModel):
    status: DependencyStatus
    detail: str | None = None


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    endpoints: dict[str, DependencyHealth]
    database: DependencyHealth
