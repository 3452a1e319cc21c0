"""The gateway's limits over real HTTP: the template's throttling (429) and the generate
function's own deadline (504 before API Gateway would give up)."""

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


def test_a_slow_endpoint_is_answered_504_by_the_function_and_recorded(
    local_stack: LocalStack,
) -> None:
    assert local_stack.emulator is not None
    answered_before = answered(local_stack.emulator, GENERATOR_ENDPOINT, "A")
    # Variant A (SmolLM2-135M) needs far longer than half a second for 64 tokens (16 can fit).
    with local_stack.alternate_gateway(function_environment={"GENERATE_DEADLINE_S": "0.5"}) as url:
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
