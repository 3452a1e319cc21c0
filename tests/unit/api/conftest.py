"""Drive the real generate handler with API Gateway events; botocore's Stubber (the runtime) and
a fake DescribeEndpoint (the control plane) stand in for SageMaker, the AWS boundary, and a real
SQLite file is the feedback store."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from pressroom_common import wiring
from pressroom_common.feedback.store import open_store
from pressroom_common.generation.settings import GenerateSettings

from local.emulate.events import proxy_event
from local.emulate.functions import load_module
from tests.fixtures.lambda_context import lambda_context
from tests.fixtures.readers import write_reader_key

REPO = Path(__file__).resolve().parents[3]
GENERATE_CODE = REPO / "apps" / "inference-api" / "src" / "generate"
REALTIME_ENDPOINT = "pressroom-test-headline"
CLASSIFIER_ENDPOINT = "pressroom-test-news-classifier"
VARIANTS = {
    "A": {
        "endpoint_name": REALTIME_ENDPOINT,
        "model_name": "headline-base",
        "model_version": "base-v1",
        "weight": 1,
    },
    "B": {
        "endpoint_name": REALTIME_ENDPOINT,
        "model_name": "headline-lite",
        "model_version": "lite-v1",
        "weight": 1,
    },
}
SERVERLESS_VARIANTS = {
    "A": {**VARIANTS["A"], "endpoint_name": "pressroom-test-headline-base"},
    "B": {**VARIANTS["B"], "endpoint_name": "pressroom-test-headline-lite"},
}


def streaming(payload: Any) -> StreamingBody:
    data = json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(data), len(data))


@dataclass
class FakeSageMakerControl:
    """DescribeEndpoint at the AWS boundary, answering per endpoint (checks run in parallel);
    an endpoint not in `endpoints` does not exist."""

    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)

    def describe_endpoint(self, *, EndpointName: str) -> dict[str, Any]:
        if EndpointName not in self.endpoints:
            raise ClientError(
                {"Error": {"Code": "ValidationException", "Message": "Could not find endpoint"}},
                "DescribeEndpoint",
            )
        return self.endpoints[EndpointName]


@dataclass
class GenerateFunction:
    """The loaded handler module plus stubs on its SageMaker clients."""

    module: Any
    generator: Stubber
    classifier: Stubber
    control: FakeSageMakerControl
    database_url: str

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw_body: bytes | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        data = (
            raw_body
            if raw_body is not None
            else (None if body is None else json.dumps(body).encode())
        )
        event = proxy_event(
            method,
            path,
            headers=[("Content-Type", "application/json"), *(headers or {}).items()],
            body=data,
        )
        response = self.module.handler(event, lambda_context("generate"))
        headers_out = {k: v[-1] for k, v in response.get("multiValueHeaders", {}).items()}
        headers_out.update(response.get("headers") or {})
        body = json.loads(response["body"]) if response["body"] else None
        return response["statusCode"], headers_out, body

    def model_answers(self, text: str, variant: str) -> None:
        self.generator.add_response(
            "invoke_endpoint",
            {
                "Body": streaming([{"generated_text": text}]),
                "ContentType": "application/json",
                "InvokedProductionVariant": variant,
            },
        )

    def model_fails(self, code: str, status: int = 503) -> None:
        self.generator.add_client_error(
            "invoke_endpoint", service_error_code=code, http_status_code=status
        )

    def classifier_answers(self, label: str | None, score: float) -> None:
        self.classifier.add_response(
            "invoke_endpoint",
            {
                "Body": streaming([{"label": label, "score": score}]),
                "ContentType": "application/json",
            },
        )


@contextmanager
def loaded_generate_function(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hosting_mode: str,
    variants: dict[str, Any],
    database_url: str | None = None,
) -> Iterator[GenerateFunction]:
    """The handler module loaded with a template-like environment, its SageMaker clients
    stubbed (the ones its cold start makes); a fresh migrated SQLite store unless
    `database_url` names another."""
    if database_url is None:
        database_url = f"sqlite:///{tmp_path / 'feedback.db'}"
        open_store(database_url, migrate=True)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    made: list[wiring.SageMakerClients] = []
    control = FakeSageMakerControl()
    real_clients = wiring.sagemaker_clients

    def stubbable_clients(settings: GenerateSettings) -> wiring.SageMakerClients:
        made.append(replace(real_clients(settings), control=control))
        return made[-1]

    monkeypatch.setattr(wiring, "sagemaker_clients", stubbable_clients)
    module = load_module(
        GENERATE_CODE,
        "app",
        {
            "VARIANTS": json.dumps(variants),
            "HOSTING_MODE": hosting_mode,
            "CLASSIFIER_ENDPOINT_NAME": CLASSIFIER_ENDPOINT,
            "DATABASE_URL": database_url,
            "READER_KEY_FILE": str(write_reader_key(tmp_path)),
            "STAGE": "test",
            "CORS_ALLOWED_ORIGINS": "https://news.example.com",
            "POWERTOOLS_SERVICE_NAME": "generate",
            "POWERTOOLS_METRICS_NAMESPACE": "PressroomTest",
        },
    )
    [clients] = made
    stubs = [Stubber(clients.generator), Stubber(clients.classifier)]
    for stub in stubs:
        stub.activate()
    try:
        yield GenerateFunction(module, *stubs, control, database_url=database_url)
    finally:
        for stub in stubs:
            stub.deactivate()


@pytest.fixture
def generate_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[GenerateFunction]:
    """Realtime hosting: both variants on one endpoint."""
    with loaded_generate_function(tmp_path, monkeypatch, "realtime", VARIANTS) as function:
        yield function


@pytest.fixture
def serverless_generate_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[GenerateFunction]:
    """Serverless hosting: one endpoint per variant."""
    with loaded_generate_function(
        tmp_path, monkeypatch, "serverless", SERVERLESS_VARIANTS
    ) as function:
        yield function
