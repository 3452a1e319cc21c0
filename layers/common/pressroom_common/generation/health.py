"""`GET /api/health`: is each SageMaker endpoint in service, and does the database answer?

Endpoints are checked with DescribeEndpoint (control plane: cheap, and it does not wake a
serverless endpoint the way an invocation would); checks run in parallel under one timeout.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from pressroom_common.generation.contracts import DependencyHealth, HealthResponse
from pressroom_common.generation.settings import GenerateSettings
from pressroom_common.platform.errors import DomainError
from pressroom_common.platform.observability import logger

T = TypeVar("T")


class SageMakerControlClient(Protocol):
    def describe_endpoint(self, *, EndpointName: str) -> dict[str, Any]: ...


class Pingable(Protocol):
    def ping(self) -> None: ...


@dataclass(frozen=True)
class EndpointCheck:
    """One endpoint to check; `variant` also requires that production variant to exist."""

    endpoint_name: str
    variant: str | None = None


class HealthChecker:
    def __init__(
        self,
        sagemaker: SageMakerControlClient,
        endpoints: Mapping[str, EndpointCheck],
        database: Pingable,
        *,
        executor: ThreadPoolExecutor,
        timeout_s: float,
    ) -> None:
        self._sagemaker = sagemaker
        self._endpoints = dict(endpoints)
        self._database = database
        self._executor = executor
        self._timeout_s = timeout_s

    def check(self) -> HealthResponse:
        # Every check starts at once and all share one deadline: the slowest dependency, not
        # the sum of them, bounds the answer. Realtime variants share one endpoint, which is
        # described (and awaited) once.
        deadline = time.monotonic() + self._timeout_s
        names = sorted({check.endpoint_name for check in self._endpoints.values()})
        pending = {name: self._executor.submit(self._describe, name) for name in names}
        database = self._executor.submit(self._check_database)
        described = {name: _result_by(future, deadline) for name, future in pending.items()}
        results = {
            name: variant_health(described[check.endpoint_name], check.variant)
            for name, check in self._endpoints.items()
        }
        database_health = _result_by(database, deadline)
        healthy = all(r.status != "unavailable" for r in (*results.values(), database_health))
        return HealthResponse(
            status="ok" if healthy else "degraded", endpoints=results, database=database_health
        )

    def _describe(self, endpoint_name: str) -> dict[str, Any] | DependencyHealth:
        try:
            return self._sagemaker.describe_endpoint(EndpointName=endpoint_name)
        except (ClientError, BotoCoreError) as error:
            logger.warning("endpoint check failed", extra={"endpoint": endpoint_name})
            return DependencyHealth(status="unavailable", detail=type(error).__name__)

    def _check_database(self) -> DependencyHealth:
        try:
            self._database.ping()
        except DomainError as error:
            return DependencyHealth(status="unavailable", detail=error.message)
        return DependencyHealth(status="ok")


def _result_by(future: Future[T], deadline: float) -> T | DependencyHealth:
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        return DependencyHealth(status="unavailable", detail="no answer in time")


def variant_health(
    described: dict[str, Any] | DependencyHealth, variant: str | None
) -> DependencyHealth:
    """Judge one DescribeEndpoint answer for the whole endpoint or for one of its variants.

    A variant of an instance-backed endpoint is judged by its own instance count, because the
    endpoint as a whole reports `Updating` while any one variant recovers.
    """
    if isinstance(described, DependencyHealth):
        return described
    status = described.get("EndpointStatus", "Unknown")
    if variant is None:
        if status == "InService":
            return DependencyHealth(status="ok")
        return DependencyHealth(status="unavailable", detail=f"endpoint is {status}")
    summaries = {v.get("VariantName"): v for v in described.get("ProductionVariants", [])}
    if variant not in summaries:
        return DependencyHealth(status="unavailable", detail=f"no variant {variant}")
    if summaries[variant].get("CurrentInstanceCount", 1) == 0:
        return DependencyHealth(status="unavailable", detail=f"variant {variant} has no instance")
    if status not in ("InService", "Updating"):
        return DependencyHealth(status="unavailable", detail=f"endpoint is {status}")
    return DependencyHealth(status="ok")


def endpoint_checks(settings: GenerateSettings) -> dict[str, EndpointCheck]:
    """What the generate function depends on: each generator variant and the classifier."""
    realtime = settings.hosting_mode == "realtime"
    checks = {
        f"generator-{name}": EndpointCheck(variant.endpoint_name, name if realtime else None)
        for name, variant in settings.variants.items()
    }
    if settings.classifier_endpoint_name:
        checks["classifier"] = EndpointCheck(settings.classifier_endpoint_name)
    return checks
