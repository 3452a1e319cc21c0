"""Schema-driven fuzzing (schemathesis) of every route of the served OpenAPI document."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from local.devstack.stack import LocalStack
from qa.reliability.fuzz import fuzz_api
from tests.fixtures.stack import UNTHROTTLED

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

EXAMPLES_PER_OPERATION = 8


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


def test_the_coverage_phase_finds_no_5xx(local_stack: LocalStack) -> None:
    # Schemathesis' coverage phase: boundary and just-out-of-bounds values of every keyword of
    # the document, missing and wrongly typed fields, and unexpected headers (a multipart
    # Content-Type without a boundary once answered 500 here).
    with local_stack.alternate_gateway(UNTHROTTLED) as url:
        run = subprocess.run(
            [
                str(SCHEMATHESIS),
                "run",
                f"{url}api/openapi.json",
                "--phases",
                "coverage",
                "--checks",
                "not_a_server_error",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert cases is not None and int(cases[1]) == int(cases[2]) >= 100, run.stdout[-2000:]
