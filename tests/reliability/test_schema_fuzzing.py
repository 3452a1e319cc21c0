"""Schema-driven fuzzing (schemathesis) of every route of the served OpenAPI document."""

from __future__ import annotations

from local.reliability.fuzz import fuzz_api
from local.stack import LocalStack

EXAMPLES_PER_OPERATION = 8
UNTHROTTLED = {"ApiThrottlingRateLimit": 10_000, "ApiThrottlingBurstLimit": 10_000}


def test_fuzzed_requests_never_get_a_5xx_or_leave_a_partial_record(
    local_stack: LocalStack,
) -> None:
    # The session stack keeps the template's 20 req/s throttle; fuzz past it, not into 429s.
    with local_stack.alternate_gateway(UNTHROTTLED) as url:
        expectations = fuzz_api(url, local_stack.database_url, EXAMPLES_PER_OPERATION)

    assert [f"{e.name}: {e.evidence}" for e in expectations if not e.held] == []
    fuzzed = {e.name.split(" (")[0] for e in expectations if e.name.startswith(("GET", "POST"))}
    assert fuzzed == {
        "POST /api/generate",
        "GET /api/health",
        "POST /api/feedback",
        "GET /api/stats",
    }
