"""Schema-driven fuzzing of every route in `GET /api/openapi.json` with schemathesis.

Valid (positive) and invalid (negative) requests are generated from the document the API
serves, sent through the gateway, and every answer must be a non-5xx; the store must hold no
partial record afterwards, and no vote (a fuzzed `vote_token` is never one the API issued).
Examples are derandomized, so a run is reproducible.
"""

from __future__ import annotations

from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Err

from qa.reliability.outcome import Expectation, expect
from qa.reliability.records import partial_generations, row_counts

AREA = "fuzzing"


@dataclass
class OperationFuzz:
    label: str
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return sum(self.statuses.values())


def fuzz_operations(base_url: str, max_examples: int) -> list[OperationFuzz]:
    """Fuzz each documented operation with positive and negative cases."""
    document = httpx.get(f"{base_url}api/openapi.json", timeout=60).json()
    schema = schemathesis.openapi.from_dict(document)
    results = []
    for operation in schema.get_all_operations():
        if isinstance(operation, Err):
            raise operation.err()  # the API's own document does not parse: a bug to fix first
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            results.append(_fuzz(operation.ok(), mode, base_url.rstrip("/"), max_examples))
    return results


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    max_examples: int,
) -> OperationFuzz:
    outcome = OperationFuzz(f"{operation.method.upper()} {operation.path} ({mode.value})")

    # Every example runs and is recorded (no shrinking): the figures count all of them.
    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def probe(case: Any) -> None:
        response = case.call(base_url=base_url, timeout=120)
        outcome.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except (Failure, FailureGroup):
            sent = case.body if case.body is not None else case.query
            outcome.failures.append(
                f"{response.status_code} for {sent!r:.200}: {response.text:.200}"
            )

    # Nothing to make invalid (GET /api/health takes no input): zero negative cases.
    with suppress(Unsatisfiable):
        probe()
    return outcome


def fuzz_api(base_url: str, database_url: str, max_examples: int) -> list[Expectation]:
    votes_before = row_counts(database_url).votes
    outcomes = fuzz_operations(base_url, max_examples)
    votes_after = row_counts(database_url).votes
    expectations = [
        expect(
            AREA,
            f"{outcome.label}: no 5xx",
            not outcome.failures and not any(status >= 500 for status in outcome.statuses),
            f"{outcome.cases} cases; "
            + ", ".join(f"{status}: {n}" for status, n in sorted(outcome.statuses.items()))
            + (f"; first failure {outcome.failures[0][:80]}" if outcome.failures else ""),
        )
        for outcome in outcomes
    ]
    partial = partial_generations(database_url)
    expectations.append(
        expect(AREA, "no partial record after fuzzing", partial == 0, f"{partial} partial")
    )
    # No generated body holds a vote token minted for its reader, so none may cast a vote.
    expectations.append(
        expect(
            AREA,
            "no fuzzed vote is stored",
            votes_after == votes_before,
            f"votes {votes_before}→{votes_after}",
        )
    )
    return expectations
