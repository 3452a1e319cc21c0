"""The SageMaker Runtime wrapper: deadlines, throttling retries and error mapping."""

from __future__ import annotations

import io
import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from botocore.response import StreamingBody
from pressroom_common.platform.errors import (
    DependencyFailed,
    DependencyTimeout,
    DependencyUnavailable,
    Throttled,
)
from pressroom_common.platform.sagemaker import Deadline, SageMakerRuntime


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "InvokeEndpoint")


def ok(payload: Any) -> dict[str, Any]:
    data = json.dumps(payload).encode()
    return {"Body": StreamingBody(io.BytesIO(data), len(data)), "InvokedProductionVariant": "A"}


class ScriptedClient:
    """Answers invocations from a script: an exception to raise or a response to return."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, threading.Event):
            step.wait()
            return ok([])
        return step  # type: ignore[no-any-return]


@pytest.fixture
def executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2)


def runtime(
    client: ScriptedClient, executor: ThreadPoolExecutor, **kwargs: Any
) -> SageMakerRuntime:
    options = {"max_attempts": 3, "attempt_timeout_s": 5.0} | kwargs
    return SageMakerRuntime(client, executor=executor, rng=random.Random(0), **options)


def test_json_body_and_invoked_variant_are_returned(executor: ThreadPoolExecutor) -> None:
    client = ScriptedClient(ok([{"generated_text": "x"}]))

    invocation = runtime(client, executor).invoke_json(
        "e", {"inputs": "hi"}, deadline=Deadline(5), target_variant="A"
    )

    assert invocation.body == [{"generated_text": "x"}]
    assert invocation.invoked_variant == "A"
    assert client.calls[0]["TargetVariant"] == "A"
    assert json.loads(client.calls[0]["Body"]) == {"inputs": "hi"}


def test_throttling_is_retried_then_succeeds(executor: ThreadPoolExecutor) -> None:
    client = ScriptedClient(
        client_error("ThrottlingException"), client_error("ThrottlingException"), ok([])
    )

    runtime(client, executor).invoke_json("e", {}, deadline=Deadline(10))

    assert len(client.calls) == 3


def test_throttling_that_outlasts_the_retries_is_throttled(executor: ThreadPoolExecutor) -> None:
    client = ScriptedClient(*[client_error("ThrottlingException")] * 3)

    with pytest.raises(Throttled):
        runtime(client, executor).invoke_json("e", {}, deadline=Deadline(10))
    assert len(client.calls) == 3


def test_other_errors_are_not_retried(executor: ThreadPoolExecutor) -> None:
    client = ScriptedClient(client_error("ModelError"))

    with pytest.raises(DependencyFailed):
        runtime(client, executor).invoke_json("e", {}, deadline=Deadline(10))
    assert len(client.calls) == 1


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (client_error("ServiceUnavailable"), DependencyUnavailable),
        (client_error("ModelNotReadyException"), DependencyUnavailable),
        (client_error("InternalFailure"), DependencyFailed),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), DependencyUnavailable),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), DependencyTimeout),
    ],
)
def test_botocore_failures_map_to_dependency_errors(
    executor: ThreadPoolExecutor, error: Exception, expected: type[Exception]
) -> None:
    with pytest.raises(expected):
        runtime(ScriptedClient(error), executor).invoke_json("e", {}, deadline=Deadline(5))


def test_a_slow_endpoint_times_out_at_the_deadline(executor: ThreadPoolExecutor) -> None:
    release = threading.Event()
    try:
        with pytest.raises(DependencyTimeout):
            runtime(ScriptedClient(release), executor).invoke_json("e", {}, deadline=Deadline(0.2))
    finally:
        release.set()


def test_a_slow_attempt_times_out_before_the_deadline(executor: ThreadPoolExecutor) -> None:
    release = threading.Event()
    deadline = Deadline(30)
    try:
        with pytest.raises(DependencyTimeout):
            runtime(ScriptedClient(release), executor, attempt_timeout_s=0.2).invoke_json(
                "e", {}, deadline=deadline
            )
    finally:
        release.set()
    assert deadline.remaining() > 20  # the attempt gave up long before the request deadline


def test_an_expired_deadline_calls_nothing(executor: ThreadPoolExecutor) -> None:
    client = ScriptedClient(ok([]))

    with pytest.raises(DependencyTimeout):
        runtime(client, executor).invoke_json("e", {}, deadline=Deadline(0))
    assert client.calls == []


def test_invalid_json_from_the_endpoint_is_a_failed_dependency(
    executor: ThreadPoolExecutor,
) -> None:
    body = {"Body": StreamingBody(io.BytesIO(b"<html>"), 6)}

    with pytest.raises(DependencyFailed):
        runtime(ScriptedClient(body), executor).invoke_json("e", {}, deadline=Deadline(5))
