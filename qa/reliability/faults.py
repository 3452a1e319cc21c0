"""Dependency faults injected into a running local stack, each checked for the answer it expects.

The mechanisms are the local runtime's own: `Emulator.kill_worker` (the supervisor restarts the
worker after its back-off), `LocalStack.alternate_gateway` (the same routes with a shorter
generate deadline) and stopping the PostgreSQL server under the store. Integration tests and
`make reliability` share these helpers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx
from pressroom_common.experiment.routing import FixedWeights, Router
from pressroom_common.experiment.settings import VariantConfig
from pressroom_common.platform.readers import ReaderKeys

from local.devstack.stack import LocalStack
from local.emulate.gateway import INTEGRATION_TIMEOUT_S
from local.emulate.sagemaker import Emulator, WorkerState
from qa.reliability.outcome import Expectation, expect

AREA = "faults"
GENERATOR_MODELS = {"A": "headline-base", "B": "headline-lite"}
CLASSIFIER_MODEL = "news-classifier"


class DatabaseServer(Protocol):
    """The part of tests.fixtures.postgres.PostgresServer the database fault needs."""

    def stop(self, mode: str = "fast") -> None: ...

    def start(self) -> None: ...


def endpoint_serving(emulator: Emulator, model_name: str) -> tuple[str, str]:
    """(endpoint, variant) of the emulator that serves `model_name`."""
    for endpoint in emulator.endpoints.values():
        for variant in endpoint.variants:
            if variant.model_name == model_name:
                return endpoint.name, variant.name
    raise LookupError(f"no endpoint serves {model_name}")


def user_routed_to(variant: str, weights: Mapping[str, float], stack: LocalStack) -> str:
    """A user id that sticky fixed-weight routing sends to `variant` (the API's own code, over
    the stack's reader hashes)."""
    keys = ReaderKeys.from_file(stack.reader_key_file)
    variants = {
        name: VariantConfig(endpoint_name="e", model_name="m", model_version="v", weight=weight)
        for name, weight in weights.items()
    }
    router = Router(FixedWeights(), variants)
    return next(
        user
        for user in (f"fault-reader-{n}" for n in range(10_000))
        if router.assign(keys.reader_hash(user)).variant == variant
    )


def answered(emulator: Emulator, endpoint: str, variant: str) -> int:
    stats = emulator.stats(endpoint, variant)
    return stats.invocations + stats.model_errors


def wait_until_answered(
    emulator: Emulator, endpoint: str, variant: str, answered_before: int, timeout_s: float = 120
) -> None:
    """An abandoned (timed-out) invocation still runs on the worker; wait until it is done."""
    deadline = time.monotonic() + timeout_s
    while answered(emulator, endpoint, variant) <= answered_before:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{endpoint}/{variant} did not answer within {timeout_s} s")
        time.sleep(0.1)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll until `condition` holds; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.1)
    return time.monotonic() - started


def _generate(base_url: str, body: Mapping[str, Any], user: str | None = None) -> httpx.Response:
    headers = {"X-User-Id": user} if user else {}
    return httpx.post(f"{base_url}api/generate", json=dict(body), headers=headers, timeout=60)


def _error_code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def generator_variant_outage(
    stack: LocalStack, weights: Mapping[str, float], variant: str = "A", recovery_s: float = 180
) -> list[Expectation]:
    """Kill one generator variant's worker: its users are served by the other variant (2xx,
    strategy `fallback`) until the supervisor restarts it, then by it again."""
    emulator = _emulator(stack)
    endpoint, _ = endpoint_serving(emulator, GENERATOR_MODELS[variant])
    user = user_routed_to(variant, weights, stack)
    emulator.kill_worker(endpoint, variant)
    during = _generate(stack.url, {"prompt": "Outage [faults]", "max_new_tokens": 2}, user)
    was_down = emulator.worker_state(endpoint, variant) is not WorkerState.READY
    body = during.json() if during.is_success else {}
    recovered_after = wait_for(
        lambda: emulator.worker_state(endpoint, variant) is WorkerState.READY,
        recovery_s,
        f"the restart of {endpoint}/{variant}",
    )
    after = _generate(
        stack.url, {"prompt": "Recovered [faults]", "variant": variant, "max_new_tokens": 2}
    )
    return [
        expect(
            AREA,
            f"variant {variant} killed: its users get 2xx from the other variant",
            during.status_code == httpx.codes.OK
            and body.get("variant") != variant
            and body.get("strategy") == "fallback",
            f"{during.status_code}, variant {body.get('variant')}, strategy "
            f"{body.get('strategy')}, worker down during the call: {was_down}",
        ),
        expect(
            AREA,
            f"variant {variant} restarted by the supervisor answers again",
            after.status_code == httpx.codes.OK and after.json().get("variant") == variant,
            f"{after.status_code} after {recovered_after:.1f} s, "
            f"{emulator.worker_restarts(endpoint, variant)} restart(s)",
        ),
    ]


def classifier_outage(stack: LocalStack, recovery_s: float = 180) -> list[Expectation]:
    """Kill the classifier's worker: generations still answer 200, with `category: null`."""
    emulator = _emulator(stack)
    endpoint, variant = endpoint_serving(emulator, CLASSIFIER_MODEL)
    emulator.kill_worker(endpoint, variant)
    during = _generate(
        stack.url, {"prompt": "Untagged [faults]", "variant": "B", "max_new_tokens": 2}
    )
    recovered_after = wait_for(
        lambda: emulator.worker_state(endpoint, variant) is WorkerState.READY,
        recovery_s,
        "the classifier's restart",
    )
    after = _generate(stack.url, {"prompt": "Tagged [faults]", "variant": "B", "max_new_tokens": 2})
    return [
        expect(
            AREA,
            "classifier down: 200 with category null",
            during.status_code == httpx.codes.OK
            and during.json().get("category", "") is None
            and during.json().get("category_confidence", "") is None,
            f"{during.status_code}, category {during.json().get('category', '?')}",
        ),
        expect(
            AREA,
            # The classifier answers again: a category, or an abstention with its confidence.
            "classifier restarted: categories come back",
            after.status_code == httpx.codes.OK
            and after.json().get("category_confidence") is not None,
            f"{after.status_code} after {recovered_after:.1f} s, category "
            f"{(after.json().get('category') or {}).get('label')}, confidence "
            f"{after.json().get('category_confidence')}",
        ),
    ]


def database_outage(
    stack: LocalStack, server: DatabaseServer, recovery_s: float = 60
) -> list[Expectation]:
    """Stop PostgreSQL under the running stack: votes answer 503 and nothing is stored; start it
    again and votes succeed, with no restart of the stack."""
    reader = "database-fault-reader"
    generated = _generate(
        stack.url, {"prompt": "Vote target [faults]", "variant": "B", "max_new_tokens": 2}, reader
    )
    generated.raise_for_status()
    generation = generated.json()
    vote = {
        "generation_id": generation["generation_id"],
        "vote": "up",
        "vote_token": generation["vote_token"],
    }
    headers = {"X-User-Id": reader}
    server.stop("fast")
    try:
        down_vote = httpx.post(f"{stack.url}api/feedback", json=vote, headers=headers, timeout=60)
        down_generate = _generate(stack.url, {"prompt": "No database [faults]", "variant": "B"})
        down_health = httpx.get(f"{stack.url}api/health", timeout=60).json()
    finally:
        server.start()
    answers: list[int] = []

    def vote_succeeds() -> bool:
        response = httpx.post(f"{stack.url}api/feedback", json=vote, headers=headers, timeout=60)
        answers.append(response.status_code)
        return response.is_success

    back_after = wait_for(vote_succeeds, recovery_s, "a vote after the database restart")
    return [
        expect(
            AREA,
            "database stopped: votes answer 503 in the error shape",
            down_vote.status_code == httpx.codes.SERVICE_UNAVAILABLE
            and _error_code(down_vote) is not None,
            f"vote {down_vote.status_code} {_error_code(down_vote)}, generate "
            f"{down_generate.status_code} {_error_code(down_generate)}",
        ),
        expect(
            AREA,
            "database stopped: health reports it unavailable",
            down_health.get("database", {}).get("status") == "unavailable",
            f"database {down_health.get('database', {}).get('status')}",
        ),
        expect(
            AREA,
            "database restarted: votes succeed without restarting the stack",
            bool(answers) and answers[-1] == httpx.codes.OK,
            f"answers after restart {answers} within {back_after:.1f} s",
        ),
    ]


def slow_endpoint(stack: LocalStack, deadline_s: float = 0.5) -> list[Expectation]:
    """A generator slower than the function's deadline: 504 from the function (its own error
    code, recorded), long before API Gateway's 29 s integration timeout."""
    emulator = _emulator(stack)
    endpoint, variant = endpoint_serving(emulator, GENERATOR_MODELS["A"])
    answered_before = answered(emulator, endpoint, variant)
    with stack.alternate_gateway(
        function_environment={"GENERATE_DEADLINE_S": str(deadline_s)}
    ) as url:
        started = time.perf_counter()
        response = _generate(
            url, {"prompt": "Too slow [faults]", "variant": variant, "max_new_tokens": 64}
        )
        elapsed_s = time.perf_counter() - started
    wait_until_answered(emulator, endpoint, variant, answered_before)
    return [
        expect(
            AREA,
            f"slow endpoint ({deadline_s} s deadline): 504 dependency_timeout from the function",
            response.status_code == httpx.codes.GATEWAY_TIMEOUT
            and _error_code(response) == "dependency_timeout"
            and elapsed_s < INTEGRATION_TIMEOUT_S,
            f"{response.status_code} {_error_code(response)} after {elapsed_s:.2f} s",
        )
    ]


def _emulator(stack: LocalStack) -> Emulator:
    if stack.emulator is None:
        raise RuntimeError("the local stack is not running")
    return stack.emulator
