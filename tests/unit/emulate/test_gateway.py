"""The local gateway's model of API Gateway: routes from the templates, precedence, throttling,
and its own error answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from local.cfn import TemplateError, load_stack
from local.emulate.gateway import (
    ApiRoute,
    Gateway,
    GatewayResponse,
    LambdaFunction,
    RestApi,
    discover_apis,
    resource_pattern,
)
from local.emulate.sagemaker.endpoints import load_local_stacks
from local.emulate.throttling import KeyedTokenBuckets, Throttle, TokenBucket
from local.emulate.waf import WebAcl, WebAclFilter, discover_web_acl
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


def handler_function(code_dir: Path, handler: str, timeout_s: float = 3) -> LambdaFunction:
    """A function of HANDLERS, written to `code_dir/handlers.py`."""
    (code_dir / "handlers.py").write_text(HANDLERS)
    return LambdaFunction(
        handler,
        handler,
        f"arn:aws:lambda:us-east-1:1:function:{handler}",
        code_dir,
        f"handlers.{handler}",
        {},
        timeout_s,
        128,
    )


@pytest.fixture
def gateway_client(tmp_path: Path) -> Iterator[TestClient]:
    def function(handler: str, timeout_s: float = 3) -> LambdaFunction:
        return handler_function(tmp_path, handler, timeout_s)

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


# --------------------------------------------------------------------------- the site's web ACL

READER_LIMIT = 10
ADDRESS_LIMIT = 25
ADDRESS = "198.51.100.7"
ANOTHER_ADDRESS = "203.0.113.9"


@pytest.fixture(scope="module")
def readers_web_acl() -> WebAcl:
    """The frontend template's web ACL, as the root parameters resolve it."""
    [root] = load_local_stacks(
        "smoke",
        DEFAULT_MODELS_ROOT,
        None,
        {"EnableWaf": "true", "ReaderRateLimit": READER_LIMIT, "ClientIpRateLimit": ADDRESS_LIMIT},
    )
    web_acl = discover_web_acl(root)
    assert web_acl is not None
    return web_acl


@pytest.fixture
def edge_app(tmp_path: Path, readers_web_acl: WebAcl) -> Iterator[Starlette]:
    """A gateway behind the web ACL; its clock stands still, so no bucket refills mid-test."""
    api = RestApi(
        "Api", "test", (ApiRoute("POST", "/api/ok", handler_function(tmp_path, "ok")),), None, {}
    )
    gateway = Gateway(
        api,
        region="us-east-1",
        environment_overrides={},
        instances_per_function=1,
        edge=WebAclFilter(readers_web_acl, clock=FakeClock()),
    )
    yield Starlette(routes=gateway.routes())
    gateway.close()


def test_the_web_acl_is_read_from_the_frontend_template(readers_web_acl: WebAcl) -> None:
    rules = [
        (rule.name, rule.limit, rule.window_s, rule.headers, rule.by_ip)
        for rule in readers_web_acl.rules
    ]

    assert rules == [
        ("per-reader", READER_LIMIT, 300, ("x-user-id",), False),
        ("per-client-ip", ADDRESS_LIMIT, 300, (), True),
    ]
    assert {rule.block.status for rule in readers_web_acl.rules if rule.block} == {429}


def test_the_web_acl_is_absent_where_the_template_leaves_it_off() -> None:
    [root] = load_local_stacks("smoke", DEFAULT_MODELS_ROOT, None, {"EnableWaf": "false"})

    assert discover_web_acl(root) is None


def test_a_reader_past_the_limit_gets_429_while_another_reader_gets_through(
    edge_app: Starlette,
) -> None:
    with TestClient(edge_app, client=(ADDRESS, 50000)) as client:
        statuses = [
            client.post("/api/ok", headers={"X-User-Id": "stuffer"}).status_code
            for _ in range(READER_LIMIT + 1)
        ]
        blocked = client.post("/api/ok", headers={"X-User-Id": "stuffer"})
        other = client.post("/api/ok", headers={"X-User-Id": "someone-else"})

    assert statuses == [201] * READER_LIMIT + [429]
    assert blocked.status_code == 429
    assert blocked.headers["content-type"] == "application/json"
    assert blocked.json()["error"]["code"] == "throttled"
    assert "x-amzn-requestid" not in blocked.headers  # answered before API Gateway
    assert other.status_code == 201


def test_rotating_made_up_ids_from_one_address_hit_the_per_address_limit(
    edge_app: Starlette,
) -> None:
    with (
        TestClient(edge_app, client=(ADDRESS, 50000)) as rotating,
        TestClient(edge_app, client=(ANOTHER_ADDRESS, 50000)) as elsewhere,
    ):
        statuses = [
            rotating.post("/api/ok", headers={"X-User-Id": f"made-up-{n}"}).status_code
            for n in range(ADDRESS_LIMIT + 1)
        ]
        other_address = elsewhere.post("/api/ok", headers={"X-User-Id": "made-up-0"})

    assert statuses == [201] * ADDRESS_LIMIT + [429]
    assert other_address.status_code == 201


def test_the_reader_rule_counts_only_api_requests_that_carry_the_header(
    readers_web_acl: WebAcl,
) -> None:
    edge = WebAclFilter(readers_web_acl, clock=FakeClock())
    reader = {"x-user-id": "reader"}

    anonymous = [edge.blocked("/api/ok", {}, ADDRESS) for _ in range(ADDRESS_LIMIT - READER_LIMIT)]
    site = [edge.blocked("/index.html", reader, ADDRESS) for _ in range(2 * ADDRESS_LIMIT)]
    within = [edge.blocked("/api/ok", reader, ADDRESS) for _ in range(READER_LIMIT)]
    past_reader = edge.blocked("/api/ok", reader, ADDRESS)
    past_address = edge.blocked("/api/ok", {}, ADDRESS)

    assert set(anonymous + site + within) == {None}
    assert past_reader is not None and past_reader[0].name == "per-reader"
    assert past_address is not None and past_address[0].name == "per-client-ip"


def test_a_blocked_reader_gets_through_again_as_the_window_refills(
    readers_web_acl: WebAcl,
) -> None:
    clock = FakeClock()
    edge = WebAclFilter(readers_web_acl, clock=clock)
    reader = {"x-user-id": "reader"}

    within = [edge.blocked("/api/ok", reader, ADDRESS) for _ in range(READER_LIMIT)]
    past = edge.blocked("/api/ok", reader, ADDRESS)
    clock.now = 300 / READER_LIMIT  # the window's rate gives one request back
    again = [edge.blocked("/api/ok", reader, ADDRESS) is None for _ in range(2)]

    assert set(within) == {None} and past is not None
    assert again == [True, False]


def test_rotating_keys_do_not_grow_the_buckets_without_bound() -> None:
    clock = FakeClock()
    buckets = KeyedTokenBuckets(Throttle(rate_per_s=1, burst=1), clock, prune_after=4)
    for n in range(4):
        buckets.try_acquire((f"id-{n}",))

    clock.now = 5  # every bucket has refilled
    spent_again = buckets.try_acquire(("id-0",))
    new_key = buckets.try_acquire(("new",))  # the fifth key: full buckets are forgotten

    assert spent_again and new_key
    assert len(buckets) == 2
    assert not buckets.try_acquire(("id-0",))  # a spent bucket is kept, not reset


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        (
            "{Limit: 100, EvaluationWindowSec: 30, AggregateKeyType: IP}",
            r"Acl\.Rules\[0\] \(per-reader\)\.EvaluationWindowSec: 30; "
            r"WAF takes one of \[60, 120, 300, 600\]",
        ),
        (
            "{Limit: 100, AggregateKeyType: FORWARDED_IP}",
            r"\(per-reader\)\.AggregateKeyType: FORWARDED_IP is not emulated locally",
        ),
    ],
)
def test_a_rate_rule_the_gateway_cannot_apply_is_refused_naming_the_field(
    tmp_path: Path, statement: str, error: str
) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        "Resources:\n"
        "  Acl:\n"
        "    Type: AWS::WAFv2::WebACL\n"
        "    Properties:\n"
        "      Name: limits\n"
        "      Scope: CLOUDFRONT\n"
        "      DefaultAction: {Allow: {}}\n"
        "      Rules:\n"
        "        - Name: per-reader\n"
        "          Priority: 0\n"
        "          Action: {Block: {}}\n"
        f"          Statement: {{RateBasedStatement: {statement}}}\n"
        "  Site:\n"
        "    Type: AWS::CloudFront::Distribution\n"
        "    Properties:\n"
        "      DistributionConfig: {WebACLId: !GetAtt Acl.Arn}\n"
    )

    with pytest.raises(TemplateError, match=error):
        discover_web_acl(load_stack(template))
