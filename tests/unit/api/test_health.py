"""The health check's own rules: one deadline for every dependency."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pressroom_common.generation.health import EndpointCheck, HealthChecker


class Unanswering:
    """A SageMaker control client and a database that answer nothing until released."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def describe_endpoint(self, *, EndpointName: str) -> dict[str, Any]:
        self.released.wait()
        return {"EndpointStatus": "InService"}

    def ping(self) -> None:
        self.released.wait()


def test_every_dependency_shares_one_timeout_and_a_shared_endpoint_is_awaited_once() -> None:
    timeout_s = 0.5
    hanging = Unanswering()
    checks = {  # realtime: both variants on one endpoint
        "generator-A": EndpointCheck("generator", "A"),
        "generator-B": EndpointCheck("generator", "B"),
        "classifier": EndpointCheck("classifier"),
    }
    with ThreadPoolExecutor(max_workers=4) as executor:
        checker = HealthChecker(hanging, checks, hanging, executor=executor, timeout_s=timeout_s)
        started = time.monotonic()
        report = checker.check()
        elapsed = time.monotonic() - started
        hanging.released.set()

    assert report.status == "degraded"
    assert {r.detail for r in (*report.endpoints.values(), report.database)} == {
        "no answer in time"
    }
    # Awaiting each in turn took 4 timeouts (the generator endpoint twice, then the
    # classifier and the database); under one deadline the answer comes after about one.
    assert timeout_s <= elapsed < 2.5 * timeout_s
