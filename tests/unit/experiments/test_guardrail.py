"""The guardrail drains a failing or slow variant for a cool-down, and never the last one."""

from __future__ import annotations

import io
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pressroom_common.experiment.adaptive import Guardrail, GuardrailThresholds
from pressroom_common.experiment.routing import FixedWeights, Router
from pressroom_common.feedback.store import FeedbackStore, open_store
from pressroom_common.generation.contracts import GenerateRequest
from pressroom_common.generation.service import Classifier, GenerationService, Generator
from pressroom_common.platform.sagemaker import SageMakerRuntime

from tests.fixtures.experiments import VARIANTS, FakeClock
from tests.fixtures.readers import TEST_READER_KEYS, reader_hash

THRESHOLDS = GuardrailThresholds(
    window_s=30, min_requests=5, max_error_rate=0.5, max_p95_latency_ms=1000, cooldown_s=60
)
USERS = [reader_hash(f"reader-{n}") for n in range(200)]


def guarded_router(clock: FakeClock) -> Router:
    return Router(FixedWeights(), VARIANTS, guardrail=Guardrail(VARIANTS, THRESHOLDS, clock=clock))


def routed_variants(router: Router) -> set[str]:
    return {router.assign(user).variant for user in USERS}


def test_a_variant_whose_error_rate_crosses_the_threshold_is_drained_then_restored() -> None:
    clock = FakeClock()
    router = guarded_router(clock)
    for _ in range(5):
        router.record_outcome("A", ok=True, latency_ms=50)
        router.record_outcome("B", ok=False, latency_ms=50)

    assert routed_variants(router) == {"A"}
    clock.now += 59
    assert routed_variants(router) == {"A"}
    clock.now += 1
    assert routed_variants(router) == {"A", "B"}


def test_draining_and_restoring_are_logged_with_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    router = guarded_router(clock)
    for _ in range(5):
        router.record_outcome("B", ok=False, latency_ms=50)
    clock.now += THRESHOLDS.cooldown_s
    router.assign(USERS[0])

    records = {record.getMessage(): record.__dict__ for record in caplog.records}
    drained = records["guardrail drained a variant"]
    assert (drained["variant"], drained["reason"]) == ("B", "error_rate")
    assert (drained["error_rate"], drained["window_requests"]) == (1.0, 5)
    assert records["guardrail restored a variant"]["variant"] == "B"


def test_a_variant_whose_p95_latency_crosses_the_threshold_is_drained() -> None:
    router = guarded_router(FakeClock())
    for latency in (100, 200, 1500, 1600, 1700):
        router.record_outcome("B", ok=True, latency_ms=latency)

    assert routed_variants(router) == {"A"}


def test_errors_below_the_threshold_or_the_minimum_count_drain_nothing() -> None:
    router = guarded_router(FakeClock())
    for index in range(10):
        router.record_outcome("B", ok=index % 3 != 0, latency_ms=50)  # 4 errors in 10
    for _ in range(4):
        router.record_outcome("A", ok=False, latency_ms=50)  # fewer than min_requests

    assert routed_variants(router) == {"A", "B"}


def test_failures_older_than_the_window_are_forgotten() -> None:
    clock = FakeClock()
    router = guarded_router(clock)
    for _ in range(4):
        router.record_outcome("B", ok=False, latency_ms=50)
    clock.now += 31
    router.record_outcome("B", ok=False, latency_ms=50)

    assert routed_variants(router) == {"A", "B"}


def test_the_last_healthy_variant_is_never_drained() -> None:
    router = guarded_router(FakeClock())
    for _ in range(5):
        router.record_outcome("B", ok=False, latency_ms=50)
    for _ in range(20):
        router.record_outcome("A", ok=False, latency_ms=50)

    assert routed_variants(router) == {"A"}


def test_an_explicit_override_still_reaches_a_drained_variant() -> None:
    router = guarded_router(FakeClock())
    for _ in range(5):
        router.record_outcome("B", ok=False, latency_ms=50)

    assert router.assign(USERS[0], "B").variant == "B"


class FlakySageMaker:
    """The sagemaker-runtime client (the AWS boundary): variants in `failing` answer ModelError."""

    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.calls: Counter[str] = Counter()

    def invoke_endpoint(self, **request: Any) -> dict[str, Any]:
        variant = request["TargetVariant"]
        self.calls[variant] += 1
        if variant in self.failing:
            raise ClientError(
                {"Error": {"Code": "ModelError", "Message": "worker crashed"}}, "InvokeEndpoint"
            )
        body = json.dumps([{"generated_text": f" from {variant}"}]).encode()
        return {"Body": io.BytesIO(body), "InvokedProductionVariant": variant}


@pytest.fixture
def store() -> FeedbackStore:
    return open_store("sqlite://", migrate=True)


def test_the_generate_flow_drains_a_failing_variant_and_restores_it_after_the_cool_down(
    store: FeedbackStore,
) -> None:
    clock = FakeClock()
    router = guarded_router(clock)
    sagemaker = FlakySageMaker()
    with ThreadPoolExecutor(max_workers=2) as executor:
        runtime = SageMakerRuntime(
            sagemaker, max_attempts=1, attempt_timeout_s=5, executor=executor
        )
        service = GenerationService(
            router,
            Generator(runtime, router, "realtime"),
            Classifier(runtime, None, timeout_s=1),
            store,
            TEST_READER_KEYS,
            deadline_s=10,
        )
        users_of_b = [
            f"u{n}" for n in range(200) if router.assign(reader_hash(f"u{n}")).variant == "B"
        ]
        request = GenerateRequest(prompt="Markets rally as")

        # Given B starts failing, its readers are answered by A through the fallback...
        sagemaker.failing.add("B")
        first = [service.generate(request, user) for user in users_of_b[:5]]
        assert {(r.variant, r.strategy) for r in first} == {("A", "fallback")}

        # ...until the guardrail drains B: its readers go to A directly, B is not called.
        calls_to_b = sagemaker.calls["B"]
        later = [service.generate(request, user) for user in users_of_b[5:15]]
        assert {(r.variant, r.strategy) for r in later} == {("A", "fixed")}
        assert sagemaker.calls["B"] == calls_to_b

        # After the cool-down, B (recovered) serves its readers again.
        sagemaker.failing.clear()
        clock.now += THRESHOLDS.cooldown_s
        restored = service.generate(request, users_of_b[0])
        assert (restored.variant, restored.strategy) == ("B", "fixed")
