"""The generate function: POST /api/generate, GET /api/health, GET /api/openapi.json.

Everything is built once per cold start from the environment the template sets; the routes
only hand over to the common layer. botocore itself reads `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`
and `AWS_ENDPOINT_URL_SAGEMAKER`, which point the clients at the local emulator.
"""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from pressroom_common.api import USER_ID_HEADER, create_app, error_responses
from pressroom_common.experiments import build_guardrail
from pressroom_common.generation import Classifier, GenerationService, Generator
from pressroom_common.health import HealthChecker, endpoint_checks
from pressroom_common.models import GenerateRequest, GenerateResponse, HealthResponse
from pressroom_common.routing import Router, build_strategy
from pressroom_common.sagemaker import SageMakerRuntime, runtime_client_config
from pressroom_common.settings import GenerateSettings
from pressroom_common.store import open_store

settings = GenerateSettings()  # required fields come from the environment
store = open_store(settings.database_url)
executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sagemaker")


def _client(service: str, read_timeout_s: float) -> Any:
    config = runtime_client_config(
        connect_timeout_s=settings.model_connect_timeout_s, read_timeout_s=read_timeout_s
    )
    return boto3.client(service, config=config)


generator_client = _client("sagemaker-runtime", settings.model_attempt_timeout_s)
classifier_client = _client("sagemaker-runtime", settings.classifier_timeout_s)
control_client = _client("sagemaker", settings.health_timeout_s)

router = Router(
    build_strategy(
        settings.routing_strategy,
        counts=store,
        warmup_impressions=settings.thompson_warmup_impressions,
        refresh_s=settings.thompson_refresh_s,
    ),
    settings.variants,
    guardrail=build_guardrail(settings),
)
service = GenerationService(
    router,
    Generator(
        SageMakerRuntime(
            generator_client,
            max_attempts=settings.model_max_attempts,
            attempt_timeout_s=settings.model_attempt_timeout_s,
            executor=executor,
        ),
        router,
        settings.hosting_mode,
    ),
    Classifier(
        SageMakerRuntime(
            classifier_client,
            max_attempts=1,
            attempt_timeout_s=settings.classifier_timeout_s,
            executor=executor,
        ),
        settings.classifier_endpoint_name,
        settings.classifier_timeout_s,
    ),
    store,
    deadline_s=settings.generate_deadline_s,
)
health_checker = HealthChecker(
    control_client,
    endpoint_checks(settings),
    store,
    executor=executor,
    timeout_s=settings.health_timeout_s,
)
app = create_app(settings, title="Pressroom API", with_openapi=True)


@app.post(
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
def generate(request: GenerateRequest) -> GenerateResponse:
    return service.generate(request, app.current_event.headers.get(USER_ID_HEADER))


@app.get("/api/health", summary="Status of each SageMaker endpoint and of the database")
def health() -> HealthResponse:
    return health_checker.check()


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
