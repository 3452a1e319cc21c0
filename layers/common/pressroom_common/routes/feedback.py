"""POST /api/feedback and GET /api/stats: the routes of the feedback function."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import Depends
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from pressroom_common.experiment.report import StatsReport
from pressroom_common.feedback.contracts import FeedbackRequest, FeedbackResponse
from pressroom_common.feedback.service import FeedbackService
from pressroom_common.platform.api import error_responses
from pressroom_common.platform.readers import reader_id


def feedback_router(service: FeedbackService) -> Router:
    """The routes over the function's feedback service (its store, reader key, weights and
    round)."""
    router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves __init__ untyped

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
        request: FeedbackRequest, reader: Annotated[str | None, Depends(reader_id)]
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
        since: Annotated[
            datetime | None,
            Query(
                description="ISO 8601; only generations created at or after it (UTC if no "
                "zone). Default: the start of the current experiment round (the deployment's "
                "ExperimentStartedAt), or all time when no round is set."
            ),
        ] = None,
    ) -> StatsReport:
        """The experiment's statistics over one window: by default the current round, which a
        promoted challenger starts, so the votes of the round before do not count."""
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return service.stats(since)

    return router
