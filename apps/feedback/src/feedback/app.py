"""The feedback function: POST /api/feedback (store a vote) and GET /api/stats (the experiment).

The composition root: the store and the app are built once per cold start, from the environment
the template sets, by `pressroom_common.wiring.build_feedback_app`; the routes are declared in
the common layer (`pressroom_common.routes.feedback`), and the app maps the domain errors to
their statuses: a vote that is not the reader's own 403, an unknown generation 404, a database
outage 503, any other database fault 500. The handler wears Powertools' decorators, as the
generate function's does.
"""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pressroom_common.feedback.settings import FeedbackSettings
from pressroom_common.platform.observability import logger, metrics, tracer
from pressroom_common.wiring import build_feedback_app

app = build_feedback_app(FeedbackSettings())  # required fields come from the environment


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)  # a vote's answer names the reader's vote
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
