"""The feedback function: POST /api/feedback (store a vote) and GET /api/stats (the experiment).

Settings, the store and the app are built once per cold start; the routes hand over to the
store in the common layer, whose errors the app factory maps to 404 / 503.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from pressroom_common.api import USER_ID_HEADER, create_app
from pressroom_common.store import FeedbackRequest, FeedbackResponse, StatsReport, open_store
from pressroom_common.store.settings import FeedbackSettings
from pressroom_common.users import hash_user_id

settings = FeedbackSettings()  # required fields come from the environment
store = open_store(settings.database_url)
app = create_app(settings, title="Pressroom feedback API")


@app.post("/api/feedback", summary="Vote on a generated headline")
def feedback(request: FeedbackRequest) -> FeedbackResponse:
    """One vote per user and generation: voting again replaces the earlier vote.

    A 2xx means the vote is committed; an unknown `generation_id` answers 404, and a database
    outage 503 with nothing stored.
    """
    user_hash = hash_user_id(app.current_event.headers.get(USER_ID_HEADER))
    stored = store.record_vote(request.generation_id, user_hash, request.vote)
    return FeedbackResponse.model_validate(stored.model_dump())


@app.get("/api/stats", summary="A/B experiment statistics per variant")
def stats(
    since: Annotated[
        datetime | None,
        Query(description="ISO 8601; only generations created at or after it (UTC if no zone)"),
    ] = None,
) -> StatsReport:
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return store.stats(since, settings.variant_weights)


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
