"""The offline gate on a real retrain of the smoke champion: a challenger collapsed onto one
up-voted headline is registered Rejected with the reasons, and no round can start with it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pressroom_common.feedback.store import open_store
from rich.console import Console

from local.registry import REJECTED
from local.retrain import run_retrain
from local.rounds.state import Round, RoundRefused
from tests.fixtures.feedback import record_voted_answers
from tests.fixtures.sagemaker import models_root_of
from training.artifacts import Artifact

PROMPTS = ("Markets", "Football club", "Government", "Scientists", "Film star")
# What a loop rewarding one safe headline converges to: every up-vote on the same text.
THE_ONE_HEADLINE = " final in England tonight"


def test_a_challenger_collapsed_onto_one_headline_is_rejected_and_cannot_start_a_round(
    smoke_artifacts: dict[str, Artifact], tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'feedback.db'}"
    answers = [(THE_ONE_HEADLINE, "up")] * 40 + [(" rally as rates fall", "down")] * 2
    record_voted_answers(open_store(database_url, migrate=True), answers, PROMPTS)
    models_root = models_root_of(smoke_artifacts)

    # Trained hard on that one text until the model writes little else.
    challenger = run_retrain(
        database_url,
        profile="smoke",
        champion_version=None,
        overrides={
            "min_each": 2,
            "max_steps": 40,
            "epochs": 20,
            "learning_rate": 3e-3,
            "distinct_examples": False,  # every copy of the headline trains, as before the gate
            "anchor_weight": 0.0,  # nothing holds it to the champion
        },
        models_root=models_root,
        registry_root=tmp_path / "registry",
        console=Console(stderr=True),
    )

    assert challenger.status == REJECTED
    assert (
        challenger.reason is not None and "distinct answers to a voted prompt" in challenger.reason
    )
    gate = challenger.manifest["training"]["gate"]
    assert gate["passed"] is False
    figures = gate["figures"]
    floor = gate["thresholds"]["min_distinct_share"]
    assert figures["challenger"]["voted_distinct_share"] < floor
    assert figures["champion"]["voted_distinct_share"] >= floor
    card = (challenger.model_dir / "README.md").read_text()
    assert "## Offline gate against the champion (failed" in card
    with pytest.raises(RoundRefused, match="distinct answers to a voted prompt"):
        Round.start(challenger, share=0.1, started_at=datetime.now(UTC), models_root=models_root)
