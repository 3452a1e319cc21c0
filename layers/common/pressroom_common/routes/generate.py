"""POST /api/generate and GET /api/health: the routes of the generate function."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Depends
from aws_lambda_powertools.event_handler.api_gateway import Router

from pressroom_common.generation.contracts import GenerateRequest, GenerateResponse, HealthResponse
from pressroom_common.generation.health import HealthChecker
from pressroom_common.generation.service import GenerationService
from pressroom_common.platform.api import error_responses
from pressroom_common.platform.readers import reader_id


def generate_router(service: GenerationService, checker: HealthChecker) -> Router:
    """The routes over the function's generation service and health checker."""
    router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves __init__ untyped

    @router.post(
        "/api/generate",
        summary="Generate a headline from a prompt with one of the A/B variants",
        responses={
            200: {
                "description": "The generated headline, its variant, model, category and latencies",
                "content": {"application/json": {"model": GenerateResponse}},
            },
            **error_responses(422, 429, 502, 503, 504),
        },
    )
    def generate(
        request: GenerateRequest, reader: Annotated[str | None, Depends(reader_id)]
    ) -> GenerateResponse:
        return service.generate(request, reader)

    @router.get("/api/health", summary="Status of each SageMaker endpoint and of the database")
    def health() -> HealthResponse:
        return checker.check()

    return router
