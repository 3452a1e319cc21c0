"""The feedback loop end to end on the smoke models (a small version of `pressroom
simulate-retrain`): readers vote through the real API, `retrain` learns from exactly those votes,
and the challenger it registers then answers on variant B of a new round at its canary share.

Whether the challenger *wins* is a property of the full models; BENCHMARKS.md has that run."""

from __future__ import annotations

import json
from pathlib import Path

from pressroom_common.feedback.store import open_store
from rich.console import Console

from local.experiment.loop import close_the_loop, write_loop_files
from local.experiment.simulate import PrefersShortHeadlines
from local.registry import PENDING
from tests.fixtures.sagemaker import models_root_of
from training.artifacts import Artifact
from training.feedback.votes import training_set_sha256

READERS = 40


def test_votes_of_round_one_train_the_challenger_that_answers_on_b_in_round_two(
    smoke_artifacts: dict[str, Artifact], tmp_path: Path
) -> None:
    database = tmp_path / "feedback.db"
    champion = smoke_artifacts["headline-base"].manifest["version"]
    lite = smoke_artifacts["headline-lite"].manifest["version"]

    result = close_the_loop(
        "smoke",
        database,
        readers=READERS,
        round_readers=READERS,
        share=0.2,
        seed=3,
        # The smoke models write long word salad: a generous limit gives both kinds of vote.
        taste=PrefersShortHeadlines(max_words=14),
        models_root=models_root_of(smoke_artifacts),
        registry_root=tmp_path / "registry",
        console=Console(stderr=True),
        checkpoint_every=20,
    )

    assert result.first_round.failed_requests == result.second_round.failed_requests == 0
    assert result.first_round.models == {
        "A": f"headline-base {champion}",
        "B": f"headline-lite {lite}",
    }
    challenger = result.challenger
    assert challenger.status == PENDING
    assert challenger.version not in (champion, lite)
    assert result.second_round.models["A"] == f"headline-base {champion}"
    assert result.second_round.models.get("B") == f"headline-base {challenger.version}"
    # The challenger learned from round one's votes, exactly, and from nothing else.
    learned = challenger.manifest["training"]["votes"]
    round_one_votes = open_store(f"sqlite:///{database}").voted_generations()[:READERS]
    assert learned["examples"] == READERS
    assert learned["training_set_sha256"] == training_set_sha256(round_one_votes)
    assert learned["source"]["version"] == champion
    # Every checkpoint of round two is the API's verdict on the round alone.
    assert [checkpoint.requests for checkpoint in result.second_round.checkpoints] == [20, 40]
    assert set(result.second_round.checkpoints[-1].probability_best) == {"A", "B"}
    # `round decide` reads the same verdict: 40 readers are too few to end the round.
    assert result.decision.startswith("wait: too few votes"), result.decision

    written = write_loop_files(result, tmp_path / "loop")
    figures = json.loads(written[0].read_text())
    assert figures["challenger"]["version"] == challenger.version
    assert figures["canary_share"] == 0.2
    assert written[1].stat().st_size > 10_000  # the chart, drawn
