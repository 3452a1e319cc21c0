"""The generate function: POST /api/generate, GET /api/health, GET /api/openapi.json.

The composition root: everything is built once per cold start, from the environment the template
sets, by `pressroom_common.wiring.build_generate_app`; the routes are declared in the common
layer (`pressroom_common.routes`). The handler wears Powertools' decorators: the request's log
lines carry API Gateway's request id, X-Ray traces it (in Lambda), and the cold start is counted.
"""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pressroom_common.generation.settings import GenerateSettings
from pressroom_common.platform.observability import logger, metrics, tracer
from pressroom_common.wiring import build_generate_app

app = build_generate_app(GenerateSettings())  # required fields come from the environment


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)  # responses carry readers' vote tokens
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
