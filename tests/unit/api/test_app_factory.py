"""The app factory maps every failure to the one error shape, in one place."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from pressroom_common.experiment.settings import RoundSettings
from pressroom_common.platform.api import create_app
from pressroom_common.platform.errors import (
    DependencyFailed,
    DependencyTimeout,
    DependencyUnavailable,
    DomainError,
    NotFound,
    Throttled,
    ValidationError,
)
from pressroom_common.platform.settings import ApiSettings
from pydantic import ValidationError as PydanticValidationError

from local.emulate.events import proxy_event
from tests.fixtures.lambda_context import lambda_context


def app_raising(error: Exception) -> APIGatewayRestResolver:
    app = create_app(ApiSettings())

    @app.get("/api/fail")
    def fail() -> dict[str, Any]:
        raise error

    return app


def call(app: APIGatewayRestResolver) -> tuple[int, dict[str, Any]]:
    response = app.resolve(
        proxy_event("GET", "/api/fail", request_id="req-42"), lambda_context("generate")
    )
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ValidationError("bad"), 422, "validation_error"),
        (NotFound("gone"), 404, "not_found"),
        (Throttled("slow down"), 429, "throttled"),
        (DependencyFailed("model broke"), 502, "dependency_failed"),
        (DependencyUnavailable("db down"), 503, "dependency_unavailable"),
        (DependencyTimeout("too slow"), 504, "dependency_timeout"),
    ],
)
def test_domain_errors_answer_their_status_and_code(
    error: DomainError, status: int, code: str
) -> None:
    answered, body = call(app_raising(error))

    assert answered == status
    assert body == {"error": {"code": code, "message": error.message}}


def test_details_are_passed_through() -> None:
    _, body = call(app_raising(NotFound("gone", details={"field": "generation_id"})))

    assert body["error"]["details"] == {"field": "generation_id"}


def test_an_unexpected_exception_is_a_500_without_internals() -> None:
    response = app_raising(KeyError("secret-internal-name")).resolve(
        proxy_event("GET", "/api/fail", request_id="req-42"), lambda_context("generate")
    )

    assert response["statusCode"] == 500
    assert json.loads(response["body"])["error"]["code"] == "internal_error"
    assert "secret-internal-name" not in response["body"]
    assert "Traceback" not in response["body"]
    assert response["multiValueHeaders"]["X-Request-Id"] == ["req-42"]


def test_no_cors_headers_without_configured_origins() -> None:
    app = create_app(ApiSettings())

    @app.get("/api/ok")
    def ok() -> dict[str, str]:
        return {"ok": "yes"}

    response = app.resolve(
        proxy_event("GET", "/api/ok", headers=[("Origin", "https://a.example")]),
        lambda_context("generate"),
    )

    assert response["statusCode"] == 200
    assert "Access-Control-Allow-Origin" not in response["multiValueHeaders"]


def test_settings_split_the_cors_origins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "https://a.example, https://b.example,")

    assert ApiSettings().cors_allowed_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),  # the template's default: no round, all time
        ("2026-05-01T09:30:00Z", datetime(2026, 5, 1, 9, 30, tzinfo=UTC)),
        ("2026-05-01T09:30:00", datetime(2026, 5, 1, 9, 30, tzinfo=UTC)),  # UTC when zoneless
        ("2026-05-01T11:30:00+02:00", datetime(2026, 5, 1, 9, 30, tzinfo=UTC)),
    ],
)
def test_settings_read_the_experiment_rounds_start(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: datetime | None
) -> None:
    monkeypatch.setenv("EXPERIMENT_STARTED_AT", value)

    assert RoundSettings().experiment_started_at == expected


def test_a_bad_experiment_start_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPERIMENT_STARTED_AT", "last tuesday")

    with pytest.raises(PydanticValidationError, match="experiment_started_at"):
        RoundSettings()
