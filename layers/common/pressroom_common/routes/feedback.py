"""POST /api/feedback and GET /api/stats: the routes of the feedback function."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Depends
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from pressroom_common.feedback.service import FeedbackService
from pressroom_common.feedback.store import (
    FeedbackRequest,
    FeedbackResponse,
    FeedbackStore,
    StatsReport,
)
from pressroom_common.platform.api import error_responses, unprovided
from pressroom_common.platform.readers import reader_id

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves __init__ untyped


def feedback_service() -> FeedbackService:
    unprovided("feedback_service")


def feedback_store() -> FeedbackStore:
    unprovided("feedback_store")


def variant_weights() -> Mapping[str, float]:
    unprovided("variant_weights")


def experiment_started_at() -> datetime | None:
    unprovided("experiment_started_at")


def serve(
    app: APIGatewayRestResolver,
    *,
    service: Callable[[], FeedbackService],
    store: Callable[[], FeedbackStore],
    weights: Callable[[], Mapping[str, float]],
    started_at: Callable[[], datetime | None],
) -> None:
    """Serve these routes on `app` with the function's vote service and store, the template's
    variant weights and the start of the experiment round (`EXPERIMENT_STARTED_AT`, None for
    all time)."""
    app.include_router(router)
    app.dependency_overrides[feedback_service] = service
    app.dependency_overrides[feedback_store] = store
    app.dependency_overrides[variant_weights] = weights
    app.dependency_overrides[experiment_started_at] = started_at


@router.post(
    "/api/feedback",
    summary="Vote on a generated headline",
    responses={
        200: {
            "description": "The stored vote",
            "content": {"application/json": {"model": FeedbackResponse}},
        },
        **error_responses(403, 404, 422, 429, 503),
    },
)
def feedback(
    request: FeedbackRequest,
    service: Annotated[FeedbackService, Depends(feedback_service)],
    reader: Annotated[str | None, Depends(reader_id)],
) -> FeedbackResponse:
    """One vote per reader and generation, by the reader it was served to: voting again
    replaces the earlier vote.

    A 2xx means the vote is committed. A vote without the generation's `vote_token`, with
    another reader's, or from a reader without an id answers 403 `vote_not_allowed` and
    stores nothing; an unknown `generation_id` answers 404, and a database outage 503.
    """
    return service.vote(request, reader)


@router.get(
    "/api/stats",
    summary="A/B experiment statistics per variant",
    responses={
        200: {
            "description": "Per-variant statistics and the experiment verdict",
            "content": {"application/json": {"model": StatsReport}},
        },
        **error_responses(422, 429, 503),
    },
)
def stats(
    store: Annotated[FeedbackStore, Depends(feedback_store)],
    weights: Annotated[Mapping[str, float], Depends(variant_weights)],
    round_started_at: Annotated[datetime | None, Depends(experiment_started_at)],
    since: Annotated[
        datetime | None,
        Query(
            description="ISO 8601; only generations created at or after it (UTC if no zone). "
            "Default: the start of the current experiment round (the deployment's "
            "ExperimentStartedAt), or all time when no round is set."
        ),
    ] = None,
) -> StatsReport:
    """The experiment's statistics over one window: by default the current round, which a
    promoted challenger starts, so the votes of the round before do not count."""
    if since is None:
        since = round_started_at
    elif since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return store.stats(since, weights)
