"""The gateway's limits over real HTTP: the template's throttling (429), the site's web ACL
(429 per reader and per client IP) and the generate function's own deadline (504 before API
Gateway would give up)."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from local.devstack.stack import LocalStack
from qa.reliability.faults import answered, wait_until_answered

GENERATOR_ENDPOINT = "pressroom-dev-headline"


def test_requests_beyond_the_templates_burst_are_throttled_429(local_stack: LocalStack) -> None:
    with (
        local_stack.alternate_gateway(
            {"ApiThrottlingRateLimit": 1, "ApiThrottlingBurstLimit": 3}
        ) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        statuses = [client.get("/api/openapi.json").status_code for _ in range(6)]
        throttled = client.get("/api/openapi.json")

    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses[3:]
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "throttled"


def test_the_web_acl_stops_one_reader_then_one_address_and_lets_others_through(
    local_stack: LocalStack,
) -> None:
    reader_limit, address_limit = 10, 25
    parameters = {
        "EnableWaf": "true",
        "ReaderRateLimit": reader_limit,
        "ClientIpRateLimit": address_limit,
        # Only the web ACL may answer 429 here.
        "ApiThrottlingRateLimit": 10_000,
        "ApiThrottlingBurstLimit": 10_000,
    }
    with (
        local_stack.alternate_gateway(parameters) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):

        def get(reader: str) -> httpx.Response:
            return client.get("/api/openapi.json", headers={"X-User-Id": reader})

        stuffer = [get("stuffer").status_code for _ in range(reader_limit)]
        blocked = get("stuffer")
        other = get("someone-else")
        # Every address's requests count together: made-up ids run into the address's limit.
        rotating = [get(f"made-up-{n}").status_code for n in range(address_limit)]

    assert stuffer == [200] * reader_limit
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "throttled"
    assert "x-amzn-errortype" not in blocked.headers  # the edge's answer, not API Gateway's
    assert other.status_code == 200
    assert 200 in rotating and rotating[-1] == 429


def test_a_slow_endpoint_is_answered_504_by_the_function_and_recorded(
    local_stack: LocalStack,
) -> None:
    assert local_stack.emulator is not None
    answered_before = answered(local_stack.emulator, GENERATOR_ENDPOINT, "A")
    # No answer of variant A comes back within 5 ms: the round trip to its worker alone takes
    # longer, before the engine writes a token.
    with local_stack.alternate_gateway(
        function_environment={"GENERATE_DEADLINE_S": "0.005"}
    ) as url:
        response = httpx.post(
            f"{url}api/generate",
            json={"prompt": "Too slow", "variant": "A", "max_new_tokens": 64},
            timeout=60,
        )

    assert response.status_code == 504
    assert response.json()["error"]["code"] == "dependency_timeout"  # ours, not the gateway's
    engine = sa.create_engine(local_stack.database_url)
    with engine.connect() as connection:
        codes = (
            connection.execute(
                sa.text("SELECT error_code FROM generations WHERE prompt = 'Too slow'")
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert codes == ["dependency_timeout"]
    # The abandoned generation still runs on variant A's worker; later tests need it idle.
    wait_until_answered(local_stack.emulator, GENERATOR_ENDPOINT, "A", answered_before)
