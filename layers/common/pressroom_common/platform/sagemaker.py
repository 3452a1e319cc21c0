"""SageMaker Runtime calls under one request deadline.

Each call runs with a per-attempt timeout no longer than what is left of the deadline, retries
throttling with full-jitter backoff while time remains, and turns every botocore failure into
a domain error (502/503/504, 429 when throttling outlasts the retries).
"""

from __future__ import annotations

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from pressroom_common.platform.errors import (
    DependencyFailed,
    DependencyTimeout,
    DependencyUnavailable,
    DomainError,
    Throttled,
)
from pressroom_common.platform.observability import logger, tracer

THROTTLING_CODES = frozenset({"ThrottlingException", "TooManyRequestsException"})
UNAVAILABLE_CODES = frozenset({"ServiceUnavailable", "ModelNotReadyException"})
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 2.0


class Deadline:
    """An absolute point in monotonic time that a whole request must finish by."""

    def __init__(self, seconds: float) -> None:
        self._expires_at = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._expires_at - time.monotonic())

    def expired(self) -> bool:
        return self.remaining() <= 0


class SageMakerRuntimeClient(Protocol):
    """The slice of boto3's `sagemaker-runtime` client this module uses."""

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]: ...


def runtime_client_config(*, connect_timeout_s: float, read_timeout_s: float) -> Config:
    """Botocore settings for our calls: our own retry loop, so botocore's is off."""
    return Config(
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        retries={"mode": "standard", "total_max_attempts": 1},
    )


@dataclass(frozen=True)
class Invocation:
    """A successful call: the decoded JSON body and the variant SageMaker says answered."""

    body: Any
    invoked_variant: str | None
    latency_ms: float


class SageMakerRuntime:
    """Invokes endpoints with JSON bodies under a deadline.

    One attempt waits at most `attempt_timeout_s`, so a slow variant leaves time to fall back
    to the other one before the request deadline. Calls run on a small thread pool so a caller
    can stop waiting when its time is up even while botocore is still reading; botocore's own
    read timeout then ends that thread.
    """

    def __init__(
        self,
        client: SageMakerRuntimeClient,
        *,
        max_attempts: int,
        attempt_timeout_s: float,
        executor: ThreadPoolExecutor,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._max_attempts = max_attempts
        self._attempt_timeout_s = attempt_timeout_s
        self._executor = executor
        self._rng = rng or random.Random()  # noqa: S311 - backoff jitter, not cryptography

    @tracer.capture_method(capture_response=False)  # the answer is a reader's headline
    def invoke_json(
        self,
        endpoint_name: str,
        payload: Any,
        *,
        deadline: Deadline,
        target_variant: str | None = None,
        inference_id: str | None = None,
    ) -> Invocation:
        """Invoke `endpoint_name` with `payload` as JSON; `inference_id` (at most 64
        characters) is recorded with the endpoint's data capture, so captured requests join to
        their ground truth on it."""
        request: dict[str, Any] = {
            "EndpointName": endpoint_name,
            "Body": json.dumps(payload).encode("utf-8"),
            "ContentType": "application/json",
            "Accept": "application/json",
        }
        if target_variant is not None:
            request["TargetVariant"] = target_variant
        if inference_id is not None:
            request["InferenceId"] = inference_id
        for attempt in range(1, self._max_attempts + 1):
            try:
                return self._invoke_once(request, deadline)
            except Throttled:
                backoff = self._rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))
                if attempt == self._max_attempts or backoff >= deadline.remaining():
                    raise
                logger.info("throttled by SageMaker; retrying", extra={"attempt": attempt})
                time.sleep(backoff)
        raise AssertionError("unreachable: the loop returns or raises")

    def _invoke_once(self, request: dict[str, Any], deadline: Deadline) -> Invocation:
        endpoint = request["EndpointName"]
        if deadline.expired():
            raise DependencyTimeout(f"No time left to call endpoint {endpoint}")
        started = time.perf_counter()
        future = self._executor.submit(self._client.invoke_endpoint, **request)
        try:
            response = future.result(timeout=min(self._attempt_timeout_s, deadline.remaining()))
        except FutureTimeout:
            future.cancel()
            raise DependencyTimeout(f"Endpoint {endpoint} did not answer in time") from None
        except (ClientError, BotoCoreError) as error:
            raise translate_boto_error(error, endpoint) from error
        latency_ms = (time.perf_counter() - started) * 1000
        raw = response["Body"].read()
        try:
            body = json.loads(raw)
        except ValueError:
            raise DependencyFailed(f"Endpoint {endpoint} answered with invalid JSON") from None
        return Invocation(
            body=body,
            invoked_variant=response.get("InvokedProductionVariant"),
            latency_ms=latency_ms,
        )


def translate_boto_error(error: Exception, endpoint: str) -> DomainError:
    """Map a botocore failure to the domain error the API answers with."""
    if isinstance(error, ReadTimeoutError):
        return DependencyTimeout(f"Endpoint {endpoint} did not answer in time")
    if isinstance(error, (ConnectTimeoutError, EndpointConnectionError, ConnectionError)):
        return DependencyUnavailable(f"Endpoint {endpoint} is unreachable")
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        details = {"endpoint": endpoint, "aws_error_code": code}
        if code in THROTTLING_CODES:
            return Throttled(f"Endpoint {endpoint} is throttling requests", details=details)
        if code in UNAVAILABLE_CODES:
            return DependencyUnavailable(f"Endpoint {endpoint} is unavailable", details=details)
        if code == "ValidationError" and "not found" in message.lower():
            return DependencyUnavailable(f"Endpoint {endpoint} does not exist", details=details)
        return DependencyFailed(f"Endpoint {endpoint} failed: {code}", details=details)
    return DependencyFailed(f"Endpoint {endpoint} failed: {type(error).__name__}")
