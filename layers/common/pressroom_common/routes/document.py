"""GET /api/openapi.json: the OpenAPI document of every route (served by the generate function)."""

from __future__ import annotations

from functools import cache
from http import HTTPStatus

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from pressroom_common.platform.api import OPENAPI_PATH
from pressroom_common.routes import feedback, generate

API_TITLE = "Pressroom API"
API_VERSION = "1.0.0"
router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves __init__ untyped
API_ROUTERS = (generate.router, feedback.router, router)


@cache
def openapi_json() -> str:
    """The document of every route, built once per cold start by a resolver that only
    documents: its routes never run, so it needs none of their dependencies."""
    documented = APIGatewayRestResolver(enable_validation=True)
    for api_router in API_ROUTERS:
        documented.include_router(api_router)
    return documented.get_openapi_json_schema(title=API_TITLE, version=API_VERSION)


def serve(app: APIGatewayRestResolver) -> None:
    app.include_router(router)


@router.get(OPENAPI_PATH, include_in_schema=False)
def openapi_document() -> Response[str]:
    return Response(
        status_code=HTTPStatus.OK,
        content_type=content_types.APPLICATION_JSON,
        body=openapi_json(),
    )
