"""Dependency faults through the local stack: a stopped generator variant and a stopped
classifier, on a stack with its own emulator whose workers stay down once killed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from local.devstack.stack import LocalStack
from local.emulate.sagemaker import RestartPolicy, WorkerState
from qa.reliability.faults import user_routed_to
from tests.fixtures.sagemaker import models_root_of
from training.artifacts import Artifact

GENERATOR_ENDPOINT = "pressroom-dev-headline"
CLASSIFIER_ENDPOINT = "pressroom-dev-news-classifier"
# The template's default weights, which user_routed_to must follow.
EQUAL_WEIGHTS = {"A": 1.0, "B": 1.0}
# A killed worker waits an hour before its restart: down for the rest of this module.
STAYS_DOWN = RestartPolicy(initial_backoff_s=3600, max_backoff_s=3600)


@pytest.fixture(scope="module")
def faulty_stack(
    smoke_artifacts: dict[str, Artifact], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    database = Path(tmp_path_factory.mktemp("faults")) / "feedback.db"
    with LocalStack(
        "smoke",
        database_url=f"sqlite:///{database}",
        models_root=models_root_of(smoke_artifacts),
        parameter_overrides={"HostingMode": "realtime"},
        emulator_options={"restart": STAYS_DOWN},
        instances_per_function=1,
    ) as stack:
        yield stack


def stop_worker(stack: LocalStack, endpoint: str, variant: str) -> None:
    """Kill the variant's worker unless an earlier test already did (it stays down)."""
    assert stack.emulator is not None
    if stack.emulator.worker_state(endpoint, variant) is WorkerState.READY:
        stack.emulator.kill_worker(endpoint, variant)


def test_a_stopped_variant_is_answered_by_the_other_one(faulty_stack: LocalStack) -> None:
    stop_worker(faulty_stack, GENERATOR_ENDPOINT, "B")

    response = httpx.post(
        f"{faulty_stack.url}api/generate",
        json={"prompt": "Fallback", "max_new_tokens": 2},
        headers={"X-User-Id": user_routed_to("B", EQUAL_WEIGHTS, faulty_stack)},
        timeout=60,
    )

    assert response.status_code == 200, response.text
    assert (response.json()["variant"], response.json()["strategy"]) == ("A", "fallback")


def test_a_stopped_classifier_still_answers_200_without_a_category(
    faulty_stack: LocalStack,
) -> None:
    stop_worker(faulty_stack, CLASSIFIER_ENDPOINT, "AllTraffic")

    response = httpx.post(
        f"{faulty_stack.url}api/generate",
        json={"prompt": "No category", "variant": "A", "max_new_tokens": 2},
        timeout=60,
    )

    assert response.status_code == 200, response.text
    assert response.json()["category"] is None
    answer = response.json()
    assert any(character.isalnum() for character in answer["text"]), answer
    assert answer["headline"].startswith("No category") and len(answer["headline"]) > len(
        "No category"
    )


def test_health_names_the_stopped_variant_and_the_stopped_classifier(
    faulty_stack: LocalStack,
) -> None:
    stop_worker(faulty_stack, GENERATOR_ENDPOINT, "B")
    stop_worker(faulty_stack, CLASSIFIER_ENDPOINT, "AllTraffic")

    health = httpx.get(f"{faulty_stack.url}api/health", timeout=30).json()

    assert health["status"] == "degraded"
    assert health["endpoints"]["generator-A"]["status"] == "ok"
    assert health["endpoints"]["generator-B"]["status"] == "unavailable"
    assert health["endpoints"]["classifier"]["status"] == "unavailable"
    assert health["database"]["status"] == "ok"
