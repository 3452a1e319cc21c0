"""The generate function: POST /api/generate, GET /api/health, GET /api/openapi.json.

Everything is built once per cold start from the environment the template sets; the routes
are declared in the common layer (`pressroom_common.routes`) and use what this module builds.
botocore itself reads `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` and `AWS_ENDPOINT_URL_SAGEMAKER`,
which point the clients at the local emulator.
"""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from pressroom_common.experiment.adaptive import build_guardrail
from pressroom_common.experiment.routing import Router, build_strategy
from pressroom_common.feedback.store import open_store
from pressroom_common.generation.health import HealthChecker, endpoint_checks
from pressroom_common.generation.service import Classifier, GenerationService, Generator
from pressroom_common.platform.api import create_app
from pressroom_common.platform.sagemaker import SageMakerRuntime, runtime_client_config
from pressroom_common.platform.settings import GenerateSettings
from pressroom_common.routes import document, generate

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
app = create_app(settings)
# Late-bound, so the routes always use this module's current objects.
generate.serve(app, service=lambda: service, health=lambda: health_checker)
document.serve(app)


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
