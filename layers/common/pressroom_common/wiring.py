"""The composition roots of the HTTP functions: each app built from its settings and clients.

A handler module is one line of wiring, `build_generate_app(GenerateSettings())`, built once per
cold start from the environment the template sets; tests build the same objects with their own
settings and stubbed clients. botocore reads `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` and
`AWS_ENDPOINT_URL_SAGEMAKER` itself, which point the clients at the local emulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from pressroom_common.experiment.adaptive import build_guardrail
from pressroom_common.experiment.routing import Router, build_strategy
from pressroom_common.feedback.service import FeedbackService
from pressroom_common.feedback.store import FeedbackStore, open_store
from pressroom_common.generation.health import HealthChecker, endpoint_checks
from pressroom_common.generation.service import Classifier, GenerationService, Generator
from pressroom_common.platform.api import JsonApiResolver, create_app
from pressroom_common.platform.readers import load_reader_keys
from pressroom_common.platform.sagemaker import SageMakerRuntime, runtime_client_config
from pressroom_common.platform.settings import FeedbackSettings, GenerateSettings
from pressroom_common.routes import document, feedback, generate

# Generator attempts, classifier calls and health checks run here, under their own timeouts.
SAGEMAKER_WORKERS = 8


@dataclass(frozen=True)
class SageMakerClients:
    """What the generate function calls: a runtime per model, the control plane for health."""

    generator: Any  # boto3 `sagemaker-runtime`, read timeout = one generator attempt
    classifier: Any  # boto3 `sagemaker-runtime`, read timeout = the classifier's budget
    control: Any  # boto3 `sagemaker` (DescribeEndpoint)


def sagemaker_clients(settings: GenerateSettings) -> SageMakerClients:
    def client(service: str, read_timeout_s: float) -> Any:
        config = runtime_client_config(
            connect_timeout_s=settings.model_connect_timeout_s, read_timeout_s=read_timeout_s
        )
        return boto3.client(service, config=config)

    return SageMakerClients(
        generator=client("sagemaker-runtime", settings.model_attempt_timeout_s),
        classifier=client("sagemaker-runtime", settings.classifier_timeout_s),
        control=client("sagemaker", settings.health_timeout_s),
    )


@dataclass
class GenerateApp:
    """POST /api/generate, GET /api/health, GET /api/openapi.json and what serves them."""

    settings: GenerateSettings
    clients: SageMakerClients
    store: FeedbackStore
    executor: ThreadPoolExecutor
    router: Router
    service: GenerationService
    health_checker: HealthChecker
    app: JsonApiResolver

    def handle(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        return self.app.resolve(event, context)


def build_generate_app(
    settings: GenerateSettings, clients: SageMakerClients | None = None
) -> GenerateApp:
    clients = clients or sagemaker_clients(settings)
    store = open_store(settings.database_url)
    executor = ThreadPoolExecutor(max_workers=SAGEMAKER_WORKERS, thread_name_prefix="sagemaker")
    router = Router(
        build_strategy(
            settings.routing_strategy,
            counts=store,
            warmup_votes=settings.thompson_warmup_votes,
            top_two_probability=settings.thompson_top_two_probability,
            refresh_s=settings.thompson_refresh_s,
            counts_since=settings.experiment_started_at,
        ),
        settings.variants,
        guardrail=build_guardrail(settings),
    )
    generator = Generator(
        SageMakerRuntime(
            clients.generator,
            max_attempts=settings.model_max_attempts,
            attempt_timeout_s=settings.model_attempt_timeout_s,
            executor=executor,
        ),
        router,
        settings.hosting_mode,
    )
    classifier = Classifier(
        SageMakerRuntime(
            clients.classifier,
            max_attempts=1,
            attempt_timeout_s=settings.classifier_timeout_s,
            executor=executor,
        ),
        settings.classifier_endpoint_name,
        settings.classifier_timeout_s,
    )
    wired = GenerateApp(
        settings=settings,
        clients=clients,
        store=store,
        executor=executor,
        router=router,
        service=GenerationService(
            router,
            generator,
            classifier,
            store,
            load_reader_keys(settings),
            deadline_s=settings.generate_deadline_s,
        ),
        health_checker=HealthChecker(
            clients.control,
            endpoint_checks(settings),
            store,
            executor=executor,
            timeout_s=settings.health_timeout_s,
        ),
        app=create_app(settings),
    )
    # Late-bound: the routes use whatever service and health checker the app holds now.
    generate.serve(wired.app, service=lambda: wired.service, health=lambda: wired.health_checker)
    document.serve(wired.app)
    return wired


@dataclass
class FeedbackApp:
    """POST /api/feedback and GET /api/stats over the store."""

    settings: FeedbackSettings
    store: FeedbackStore
    service: FeedbackService
    app: JsonApiResolver

    def handle(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        return self.app.resolve(event, context)


def build_feedback_app(settings: FeedbackSettings) -> FeedbackApp:
    store = open_store(settings.database_url)
    wired = FeedbackApp(
        settings,
        store,
        FeedbackService(store, load_reader_keys(settings)),
        create_app(settings),
    )
    feedback.serve(
        wired.app,
        service=lambda: wired.service,
        store=lambda: wired.store,
        weights=lambda: settings.variant_weights,
        started_at=lambda: settings.experiment_started_at,
    )
    return wired
