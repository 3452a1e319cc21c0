"""`pressroom retrain` on the smoke champion: refusals that write nothing, and a challenger that
is a new registered version recording exactly what it learned from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pressroom_common.feedback.store import FeedbackStore, open_store
from typer.testing import CliRunner

from local.cli import app
from local.registry import PENDING, versions
from tests.fixtures.feedback import record_voted_answers
from tests.fixtures.postgres import free_port
from training.artifacts import Artifact
from training.feedback.votes import held_out_generations, training_set_sha256

SHORT = (" rise", " falls again", " win", " close early")
LONG = (
    " rally as central banks signal a long pause in rates",
    " warning for the whole east coast as the storm season begins early",
)


def record_votes(store: FeedbackStore, short: int, long: int) -> None:
    """`short` up-voted short answers and `long` down-voted long ones, from two models."""
    answers = [(SHORT[i % len(SHORT)], "up") for i in range(short)]
    answers += [(LONG[i % len(LONG)], "down") for i in range(long)]
    record_voted_answers(store, answers)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'feedback.db'}"


def retrain(store_url: str, registry: Path, *options: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        [
            "retrain",
            "--profile",
            "smoke",
            "--database-url",
            store_url,
            "--registry",
            str(registry),
            *options,
        ],
    )
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize(
    ("short", "long", "refusal"),
    [
        (3, 3, "too few votes: 6 in the store, retraining needs at least 8 (--min-votes)"),
        (9, 1, "too few down-votes: 1 of 10, retraining needs at least 2 of each kind"),
        (1, 9, "too few up-votes: 1 of 10"),
    ],
)
def test_too_few_votes_or_too_few_of_one_kind_is_refused_and_nothing_is_written(
    smoke_artifacts: dict[str, Artifact],
    store_url: str,
    tmp_path: Path,
    short: int,
    long: int,
    refusal: str,
) -> None:
    record_votes(open_store(store_url, migrate=True), short, long)
    registry = tmp_path / "registry"

    exit_code, output = retrain(store_url, registry)

    assert exit_code == 1
    assert f"Not retrained: {refusal}" in output
    assert not registry.exists()


def test_an_unknown_champion_is_refused_naming_the_versions_there_are(
    smoke_artifacts: dict[str, Artifact], store_url: str, tmp_path: Path
) -> None:
    record_votes(open_store(store_url, migrate=True), 6, 6)
    registry = tmp_path / "registry"
    built = smoke_artifacts["headline-base"].manifest["version"]

    exit_code, output = retrain(store_url, registry, "--champion", "0123456789abcdef")

    assert exit_code == 1
    assert (
        "--champion 0123456789abcdef: no headline-base of that version is built or registered "
        f"(known: {built})"
    ) in output
    assert not registry.exists()


def test_a_store_that_is_down_is_refused_naming_it_without_its_password(
    smoke_artifacts: dict[str, Artifact], tmp_path: Path
) -> None:
    registry = tmp_path / "registry"
    url = f"postgresql+psycopg://pressroom:secret@127.0.0.1:{free_port()}/pressroom"

    exit_code, output = retrain(url, registry)

    assert exit_code == 1
    assert (
        "cannot read the votes: the feedback store at postgresql+psycopg://pressroom:***@" in output
    )
    assert "secret" not in output
    assert not registry.exists()


def test_a_missing_sqlite_store_is_refused_and_not_created(
    smoke_artifacts: dict[str, Artifact], tmp_path: Path
) -> None:
    database = tmp_path / "never-ran.db"

    exit_code, output = retrain(f"sqlite:///{database}", tmp_path / "registry")

    assert exit_code == 1
    assert f"no feedback store at {database}" in output
    assert not database.exists()


def test_the_challenger_is_a_new_pending_version_whose_card_records_what_it_learned_from(
    smoke_artifacts: dict[str, Artifact], store_url: str, tmp_path: Path
) -> None:
    store = open_store(store_url, migrate=True)
    record_votes(store, 6, 5)
    registry = tmp_path / "registry"
    champion = smoke_artifacts["headline-base"].manifest

    exit_code, output = retrain(store_url, registry)

    assert exit_code == 0, output
    [challenger] = versions("headline-base", registry)
    assert challenger.status == PENDING
    assert challenger.version != champion["version"]
    assert output.endswith(challenger.version)
    assert challenger.tarball.is_file()
    manifest = json.loads((challenger.directory / "manifest.json").read_text())
    learned = manifest["training"]["votes"]
    assert learned["source"] == {"name": "headline-base", "version": champion["version"]}
    assert (learned["examples"], learned["up"], learned["down"]) == (11, 6, 5)
    # Each distinct (prompt, text, vote) trains once: 6 up-votes on 4 texts, 5 down on 2.
    held_out = held_out_generations(store.voted_generations())
    trained = {
        (v.prompt, v.text, v.vote)
        for v in store.voted_generations()
        if v.generation_id not in held_out
    }
    assert learned["trained_on"] == len(trained) < learned["examples"] - learned["validation"]
    assert learned["by_model"] == {"headline-base v-base": 6, "headline-lite v-lite": 5}
    voted = store.voted_generations()
    assert learned["training_set_sha256"] == training_set_sha256(voted)
    assert learned["first_vote_at"] == voted[0].voted_at.isoformat(timespec="seconds")
    assert learned["last_vote_at"] == voted[-1].voted_at.isoformat(timespec="seconds")
    # A few small steps change little: the offline gate lets it through, on the record.
    assert manifest["training"]["gate"]["passed"] is True
    card = (challenger.model_dir / "README.md").read_text()
    assert "## Offline gate against the champion (passed)" in card
    assert "retrained from readers' votes" in card
    assert f"`{learned['training_set_sha256']}`" in card
    assert "## Side by side with headline-base" in card
    # The champion's own folder is untouched: a new version, never an overwrite.
    assert Artifact.read(smoke_artifacts["headline-base"].directory.parent) is not None
    assert (
        json.loads(
            (smoke_artifacts["headline-base"].directory.parent / "manifest.json").read_text()
        )["version"]
        == champion["version"]
    )
