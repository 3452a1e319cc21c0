"""`pressroom simulate`'s readers through the whole local stack with Thompson sampling: real HTTP,
the real gateway and handlers, the SageMaker emulator with the smoke models, and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pressroom_common.feedback.store import open_store
from typer.testing import CliRunner

from local.cli import app
from local.devstack.stack import LocalStack
from local.emulate.sagemaker import Emulator
from local.experiment.simulate import rates_taste, simulate
from tests.fixtures.sagemaker import models_root_of
from tests.fixtures.stack import SESSION_PARAMETERS
from training.artifacts import Artifact

READERS = 80


@pytest.fixture(scope="module")
def thompson_stack(
    smoke_artifacts: dict[str, Artifact],
    sagemaker_emulator: Emulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalStack]:
    database = Path(tmp_path_factory.mktemp("simulate")) / "feedback.db"
    with LocalStack(
        "smoke",
        database_url=f"sqlite:///{database}",
        models_root=models_root_of(smoke_artifacts),
        parameter_overrides={**SESSION_PARAMETERS, "RoutingStrategy": "thompson"},
        emulator=sagemaker_emulator,
        function_environment={
            "THOMPSON_WARMUP_VOTES": "10",
            # Plain Thompson sampling, whose traffic follows the evidence (the default top-two
            # split keeps the runner-up at half the traffic).
            "THOMPSON_TOP_TWO_PROBABILITY": "1.0",
            "THOMPSON_REFRESH_S": "0.01",
        },
        site_dir=None,
        instances_per_function=1,
    ) as stack:
        yield stack


def test_simulated_readers_lead_thompson_sampling_to_the_better_variant(
    thompson_stack: LocalStack,
) -> None:
    with httpx.Client(base_url=thompson_stack.url, timeout=60) as client:
        result = simulate(
            client, rates_taste({"A": 0.1, "B": 0.9}), requests=READERS, seed=4, checkpoint_every=20
        )

    assert result.failed_requests == 0
    assert len(result.served) == READERS
    assert [checkpoint.requests for checkpoint in result.checkpoints] == [20, 40, 60, 80]
    # B is the better variant by construction although the weights favour A 3:1.
    assert result.better == "B"
    assert result.better_share(20) >= 0.7
    assert result.final_probability_best > 0.95
    store = open_store(thompson_stack.database_url)
    counts = store.variant_counts()
    assert sum(up + down for _, up, down in counts.values()) == READERS
    assert all(impressions >= 10 for impressions, _, _ in counts.values())


def test_the_simulate_command_reports_against_a_running_stack(thompson_stack: LocalStack) -> None:
    result = CliRunner().invoke(
        app,
        [
            *("simulate", "--url", thompson_stack.url, "--rate", "A=0.1", "--rate", "B=0.9"),
            *("--requests", "10", "--checkpoint-every", "5", "--seed", "9"),
        ],
    )

    assert result.exit_code == 0, result.output
    assert "Better variant by truth: B" in result.output
    assert "the better variant B: P(best)" in result.output


def test_simulate_refuses_a_variant_without_a_true_rate(thompson_stack: LocalStack) -> None:
    # By now Thompson sampling sends (almost) everyone to B, which has no rate here.
    result = CliRunner().invoke(
        app, ["simulate", "--url", thompson_stack.url, "--rate", "A=0.5", "--requests", "5"]
    )

    assert result.exit_code == 1
    assert "has no true rate" in result.output
