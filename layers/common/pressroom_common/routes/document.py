"""GET /api/openapi.json: the OpenAPI document of every route (served by the generate function)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from http import HTTPStatus

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from pressroom_common.platform.api import OPENAPI_PATH

API_TITLE = "Pressroom API"
API_VERSION = "1.0.0"


def openapi_json(documented: Sequence[Router]) -> str:
    """The document of the `documented` routers' routes, built by a resolver that only
    documents: its routes never run."""
    documenting = APIGatewayRestResolver(enable_validation=True)
    for router in documented:
        documenting.include_router(router)
    return documenting.get_openapi_json_schema(title=API_TITLE, version=API_VERSION)


def document_router(documented: Sequence[Router]) -> Router:
    """The route answering the document of `documented` (every route of the API, whichever
    function serves it), built once per cold start, on its first request."""
    router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves __init__ untyped
    document = cache(lambda: openapi_json(documented))

    @router.get(OPENAPI_PATH, include_in_schema=False)
    def openapi_document() -> Response[str]:
        return Response(
            status_code=HTTPStatus.OK,
            content_type=content_types.APPLICATION_JSON,
            body=document(),
        )

    return router
