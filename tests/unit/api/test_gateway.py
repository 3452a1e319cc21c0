"""The local gateway's model of API Gateway: routes from the templates, precedence, throttling,
and its own error answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from local.emulate.gateway import (
    ApiRoute,
    Gateway,
    GatewayResponse,
    LambdaFunction,
    RestApi,
    Throttle,
    TokenBucket,
    discover_apis,
    resource_pattern,
)
from local.emulate.sagemaker.endpoints import load_local_stacks
from local.paths import DEFAULT_MODELS_ROOT

FUNCTION = LambdaFunction(
    logical_id="Fn",
    name="fn",
    arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
    code_dir=Path("."),
    handler="app.handler",
    environment={},
    timeout_s=3,
    memory_mb=128,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def pressroom_api() -> RestApi:
    [root] = load_local_stacks(
        "smoke",
        DEFAULT_MODELS_ROOT,
        None,
        {"ApiThrottlingRateLimit": 7, "ApiThrottlingBurstLimit": 9},
    )
    [api] = discover_apis(root)
    return api


def test_every_api_route_of_the_templates_is_served(pressroom_api: RestApi) -> None:
    routes = {
        (route.method, route.resource): route.function.logical_id for route in pressroom_api.routes
    }

    assert routes == {
        ("POST", "/api/generate"): "GenerateFunction",
        ("GET", "/api/health"): "GenerateFunction",
        ("GET", "/api/openapi.json"): "GenerateFunction",
        ("OPTIONS", "/api/{proxy+}"): "GenerateFunction",
        ("POST", "/api/feedback"): "FeedbackFunction",
        ("GET", "/api/stats"): "FeedbackFunction",
    }


def test_the_templates_throttling_and_gateway_responses_are_read(pressroom_api: RestApi) -> None:
    assert pressroom_api.throttle == Throttle(rate_per_s=7, burst=9)
    assert pressroom_api.gateway_responses["THROTTLED"].status == 429
    assert pressroom_api.stage == "dev"


def test_functions_get_the_environment_their_template_gives_them(pressroom_api: RestApi) -> None:
    generate = next(r.function for r in pressroom_api.routes if r.resource == "/api/generate")

    variants = json.loads(generate.environment["VARIANTS"])
    assert {name: v["model_name"] for name, v in variants.items()} == {
        "A": "headline-base",
        "B": "headline-lite",
    }
    assert generate.environment["CLASSIFIER_ENDPOINT_NAME"] == "pressroom-dev-news-classifier"
    assert generate.code_dir.name == "generate" and generate.timeout_s == 28


def test_literal_paths_win_over_greedy_ones() -> None:
    api = RestApi(
        "Api",
        "dev",
        (ApiRoute("ANY", "/api/{proxy+}", FUNCTION), ApiRoute("GET", "/api/health", FUNCTION)),
        None,
        {},
    )

    health = api.route_for("GET", "/api/health")
    other = api.route_for("GET", "/api/a/b")

    assert health is not None and health[0].resource == "/api/health"
    assert other is not None and other[1] == {"proxy": "a/b"}
    assert api.route_for("GET", "/elsewhere") is None


def test_path_variables_match_one_segment() -> None:
    pattern = resource_pattern("/api/items/{item_id}")

    assert pattern.fullmatch("/api/items/42").groupdict() == {"item_id": "42"}  # type: ignore[union-attr]
    assert pattern.fullmatch("/api/items/4/2") is None


def test_token_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(Throttle(rate_per_s=2, burst=3), clock=clock)

    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.now = 0.5  # one token back at 2 per second
    assert [bucket.try_acquire() for _ in range(2)] == [True, False]
    clock.now = 100  # never more than the burst
    assert sum(bucket.try_acquire() for _ in range(10)) == 3


HANDLERS = """
import json, time

def ok(event, context):
    seen = {
        "resource": event["resource"],
        "stage": event["requestContext"]["stage"],
        "body": event["body"],
        "remaining": context.get_remaining_time_in_millis() > 0,
    }
    return {"statusCode": 201, "headers": {"X-Seen-Path": event["path"]}, "body": json.dumps(seen)}

def boom(event, context):
    raise RuntimeError("handler bug")

def malformed(event, context):
    return {"no": "statusCode"}

def slow(event, context):
    time.sleep(2)
    return {"statusCode": 200, "body": ""}
"""
ERROR_TEMPLATES = {
    "DEFAULT_5XX": GatewayResponse(
        None, '{"error": {"code": "gateway_error", "message": $context.error.messageString}}'
    ),
    "INTEGRATION_TIMEOUT": GatewayResponse(504, '{"error": {"code": "gateway_timeout"}}'),
}


@pytest.fixture
def gateway_client(tmp_path: Path) -> Iterator[TestClient]:
    (tmp_path / "handlers.py").write_text(HANDLERS)

    def function(handler: str, timeout_s: float = 3) -> LambdaFunction:
        return LambdaFunction(
            handler,
            handler,
            f"arn:aws:lambda:us-east-1:1:function:{handler}",
            tmp_path,
            f"handlers.{handler}",
            {},
            timeout_s,
            128,
        )

    api = RestApi(
        "Api",
        "test",
        (
            ApiRoute("POST", "/api/ok", function("ok")),
            ApiRoute("GET", "/api/boom", function("boom")),
            ApiRoute("GET", "/api/malformed", function("malformed")),
            ApiRoute("GET", "/api/slow", function("slow", timeout_s=0.2)),
        ),
        None,
        ERROR_TEMPLATES,
    )
    gateway = Gateway(api, region="us-east-1", environment_overrides={}, instances_per_function=1)
    with TestClient(Starlette(routes=gateway.routes())) as client:
        yield client
    gateway.close()


def test_the_handler_gets_a_proxy_event_and_its_answer_is_passed_back(
    gateway_client: TestClient,
) -> None:
    response = gateway_client.post("/api/ok", content=b"hello")

    assert response.status_code == 201
    assert response.headers["x-seen-path"] == "/api/ok"
    assert response.json() == {
        "resource": "/api/ok",
        "stage": "test",
        "body": "hello",
        "remaining": True,
    }


def test_a_text_body_that_is_not_utf8_is_a_400_and_never_reaches_the_handler(
    gateway_client: TestClient,
) -> None:
    response = gateway_client.post(
        "/api/ok", content=b'{"prompt": "\x80"}', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert "x-seen-path" not in response.headers
    assert "UTF-8" in response.text


def test_a_raising_handler_is_a_502_in_the_apis_error_shape(gateway_client: TestClient) -> None:
    response = gateway_client.get("/api/boom")

    assert response.status_code == 502
    assert response.json() == {
        "error": {"code": "gateway_error", "message": "Internal server error"}
    }


def test_a_malformed_proxy_answer_is_a_502(gateway_client: TestClient) -> None:
    assert gateway_client.get("/api/malformed").status_code == 502


def test_a_handler_past_its_timeout_is_a_504(gateway_client: TestClient) -> None:
    response = gateway_client.get("/api/slow")

    assert response.status_code == 504
    assert response.json() == {"error": {"code": "gateway_timeout"}}


def test_an_unknown_route_is_403_missing_authentication_token(gateway_client: TestClient) -> None:
    response = gateway_client.get("/api/nothing")

    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token"}  # no DEFAULT_4XX set
