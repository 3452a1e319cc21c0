"""Bounded load and a PostgreSQL outage through a local stack whose store is a real PostgreSQL:
every acknowledged vote is stored, votes answer 503 while the server is down, and the stack
serves again once it is back, without a restart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.devstack.stack import LocalStack
from local.emulate.sagemaker import Emulator
from qa.reliability import faults
from qa.reliability.load import LoadPlan, run_load
from qa.reliability.records import audit_votes, partial_generations
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.sagemaker import models_root_of
from tests.fixtures.stack import SESSION_PARAMETERS
from training.artifacts import Artifact

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgres_stack(
    smoke_artifacts: dict[str, Artifact], sagemaker_emulator: Emulator, postgres_url: str
) -> Iterator[LocalStack]:
    with LocalStack(
        "smoke",
        database_url=postgres_url,
        models_root=models_root_of(smoke_artifacts),
        parameter_overrides={
            **SESSION_PARAMETERS,
            "ApiThrottlingRateLimit": 10_000,
            "ApiThrottlingBurstLimit": 10_000,
        },
        emulator=sagemaker_emulator,
        site_dir=None,
    ) as stack:
        yield stack


def test_every_acknowledged_vote_of_a_concurrent_load_is_stored(
    postgres_stack: LocalStack,
) -> None:
    plan = LoadPlan(requests=48, clients=8)

    result = run_load(postgres_stack.url, plan)

    assert result.unexpected == []
    assert result.generate.statuses == {200: 48}
    audit = audit_votes(postgres_stack.database_url, result.acknowledged)
    assert audit.all_accounted_for, audit
    assert partial_generations(postgres_stack.database_url) == 0


def test_a_stopped_database_answers_503_and_recovers_without_a_restart(
    postgres_stack: LocalStack, postgres_server: PostgresServer
) -> None:
    expectations = faults.database_outage(postgres_stack, postgres_server)

    assert [f"{e.name}: {e.evidence}" for e in expectations if not e.held] == []
