"""The feedback function: POST /api/feedback (store a vote) and GET /api/stats (the experiment).

Settings, the store and the app are built once per cold start; the routes are declared in the
common layer (`pressroom_common.routes.feedback`) and use this module's store, whose errors the
app factory maps to 404 / 503.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pressroom_common.feedback.store import open_store
from pressroom_common.platform.api import create_app
from pressroom_common.platform.settings import FeedbackSettings
from pressroom_common.routes import feedback

settings = FeedbackSettings()  # required fields come from the environment
store = open_store(settings.database_url)
app = create_app(settings)
feedback.serve(app, store=lambda: store, weights=lambda: settings.variant_weights)


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
