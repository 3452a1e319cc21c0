"""The generate function: POST /api/generate, GET /api/health, GET /api/openapi.json.

The composition root: everything is built once per cold start, from the environment the template
sets, by `pressroom_common.wiring.build_generate_app`; the routes are declared in the common
layer (`pressroom_common.routes`).
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pressroom_common.platform.settings import GenerateSettings
from pressroom_common.wiring import build_generate_app

generate_app = build_generate_app(GenerateSettings())  # required fields come from the environment


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return generate_app.handle(event, context)
