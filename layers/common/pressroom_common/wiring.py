"""The composition roots of the HTTP functions: each function's app built from its settings and
clients, its routes built over the collaborators they call.

A handler module builds its app once per cold start, `app = build_generate_app(GenerateSettings())`,
from the environment the template sets, and its handler is `app.resolve(event, context)`.
botocore reads `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` and `AWS_ENDPOINT_URL_SAGEMAKER` itself,
which point the clients at the local emulator; tests stand in for SageMaker at the boundary,
the clients `sagemaker_clients` makes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3

from pressroom_common.experiment.adaptive import build_guardrail
from pressroom_common.experiment.routing import Router, build_strategy
from pressroom_common.feedback.service import FeedbackService
from pressroom_common.feedback.settings import FeedbackSettings
from pressroom_common.feedback.store import FeedbackStore, open_store
from pressroom_common.generation.health import HealthChecker, endpoint_checks
from pressroom_common.generation.service import Classifier, GenerationService, Generator
from pressroom_common.generation.settings import GenerateSettings
from pressroom_common.platform.api import JsonApiResolver, create_app
from pressroom_common.platform.readers import load_reader_keys
from pressroom_common.platform.sagemaker import SageMakerRuntime, runtime_client_config
from pressroom_common.routes.document import document_router
from pressroom_common.routes.feedback import feedback_router
from pressroom_common.routes.generate import generate_router

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


def build_router(settings: GenerateSettings, counts: FeedbackStore) -> Router:
    """The A/B router: the configured strategy (Thompson sampling reads the round's votes from
    `counts`), the variants, and the guardrail."""
    return Router(
        build_strategy(
            settings.routing_strategy,
            counts=counts,
            counts_since=settings.experiment_started_at,
            thompson=settings.thompson,
        ),
        settings.variants,
        guardrail=build_guardrail(
            settings.guardrail_enabled, variants=settings.variants, thresholds=settings.guardrail
        ),
    )


def build_models(
    settings: GenerateSettings,
    clients: SageMakerClients,
    router: Router,
    executor: ThreadPoolExecutor,
) -> tuple[Generator, Classifier]:
    """The generator variants (retried, within one attempt's timeout, falling back by the
    router) and the classifier (one attempt, within its budget)."""
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
    return generator, classifier


def build_generate_app(settings: GenerateSettings) -> JsonApiResolver:
    """POST /api/generate, GET /api/health and GET /api/openapi.json."""
    clients = sagemaker_clients(settings)
    store = open_store(settings.database_url)
    reader_keys = load_reader_keys(settings)
    executor = ThreadPoolExecutor(max_workers=SAGEMAKER_WORKERS, thread_name_prefix="sagemaker")
    router = build_router(settings, store)
    generator, classifier = build_models(settings, clients, router, executor)
    served = generate_router(
        GenerationService(
            router,
            generator,
            classifier,
            store,
            reader_keys,
            deadline_s=settings.generate_deadline_s,
        ),
        HealthChecker(
            clients.control,
            endpoint_checks(settings),
            store,
            executor=executor,
            timeout_s=settings.health_timeout_s,
        ),
    )
    # The document describes the feedback function's routes too. They come from the same
    # factory that function serves, over a vote service of this function's own store, reader
    # key, weights and round: the document cannot drift from the routes, which never run here.
    feedback_routes = feedback_router(
        FeedbackService(
            store,
            reader_keys,
            weights=settings.variant_weights,
            round_started_at=settings.experiment_started_at,
        )
    )
    app = create_app(settings)
    app.include_router(served)
    app.include_router(document_router([served, feedback_routes]))
    return app


def build_feedback_app(settings: FeedbackSettings) -> JsonApiResolver:
    """POST /api/feedback and GET /api/stats over the store."""
    service = FeedbackService(
        open_store(settings.database_url),
        load_reader_keys(settings),
        weights=settings.variant_weights,
        round_started_at=settings.experiment_started_at,
    )
    app = create_app(settings)
    app.include_router(feedback_router(service))
    return app
