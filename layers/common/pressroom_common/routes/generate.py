"""POST /api/generate and GET /api/health: the routes of the generate function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Depends
from aws_lambda_powertools.event_handler.api_gateway import Router

from pressroom_common.generation.contracts import GenerateRequest, GenerateResponse, HealthResponse
from pressroom_common.generation.health import HealthChecker
from pressroom_common.generation.service import GenerationService
from pressroom_common.platform.api import error_responses, unprovided
from pressroom_common.platform.readers import reader_id

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves __init__ untyped


def generation_service() -> GenerationService:
    unprovided("generation_service")


def health_checker() -> HealthChecker:
    unprovided("health_checker")


def serve(
    app: APIGatewayRestResolver,
    *,
    service: Callable[[], GenerationService],
    health: Callable[[], HealthChecker],
) -> None:
    """Serve these routes on `app` with the function's own service and health checker."""
    app.include_router(router)
    app.dependency_overrides[generation_service] = service
    app.dependency_overrides[health_checker] = health


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
    request: GenerateRequest,
    service: Annotated[GenerationService, Depends(generation_service)],
    reader: Annotated[str | None, Depends(reader_id)],
) -> GenerateResponse:
    return service.generate(request, reader)


@router.get("/api/health", summary="Status of each SageMaker endpoint and of the database")
def health(checker: Annotated[HealthChecker, Depends(health_checker)]) -> HealthResponse:
    return checker.check()
