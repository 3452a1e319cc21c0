"""`pressroom round`: what starts a round, what it refuses (writing nothing), how it ends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from local.cli import app
from local.registry import APPROVED, PENDING, REJECTED, find, register, set_status
from local.rounds.state import load_round

CHAMPION_VERSION = "champion00000001"
CHALLENGER_VERSION = "challenger000001"


class Workspace:
    """A models root with a built champion, a registry, and where the round is kept."""

    def __init__(self, root: Path) -> None:
        self.models_root = root / "models"
        self.registry = root / "registry"
        self.round_file = root / "local" / "round.json"
        champion = self.models_root / "smoke" / "headline-base"
        champion.mkdir(parents=True)
        (champion / "manifest.json").write_text(
            json.dumps({"name": "headline-base", "version": CHAMPION_VERSION, "profile": "smoke"})
        )

    def register(self, version: str, name: str = "headline-base") -> None:
        staging = self.registry.parent / f"staging-{version}"
        staging.mkdir()
        (staging / "manifest.json").write_text(
            json.dumps({"name": name, "version": version, "profile": "smoke"})
        )
        register(staging, "a test challenger", self.registry)

    def run(self, *arguments: str) -> tuple[int, str]:
        where = ["--round-file", str(self.round_file)]
        if arguments[0] != "show":
            where += ["--registry", str(self.registry)]
        if arguments[0] == "start":
            where += ["--models-root", str(self.models_root)]
        result = CliRunner().invoke(app, ["round", *arguments, *where])
        return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


def test_start_writes_the_round_and_show_reads_it(workspace: Workspace) -> None:
    workspace.register(CHALLENGER_VERSION)

    code, output = workspace.run("start", CHALLENGER_VERSION, "--share", "0.2")

    assert code == 0, output
    experiment_round = load_round(workspace.round_file)
    assert experiment_round is not None
    assert (experiment_round.champion.name, experiment_round.champion.version) == (
        "headline-base",
        CHAMPION_VERSION,
    )
    assert experiment_round.challenger.version == CHALLENGER_VERSION
    assert experiment_round.share == 0.2
    assert experiment_round.started_at.tzinfo is not None
    _, shown = workspace.run("show")
    assert f"challenger headline-base {CHALLENGER_VERSION} on B at 20%" in shown


@pytest.mark.parametrize(
    ("arguments", "refusal"),
    [
        (
            ("start", "0123456789abcdef"),
            "headline-base 0123456789abcdef is not registered in",
        ),
        (("start", CHALLENGER_VERSION, "--share", "0"), "--share 0: the challenger's share must"),
        (("start", CHALLENGER_VERSION, "--share", "0.6"), "above 0 and at most 0.5"),
        (("start", CHAMPION_VERSION), f"{CHAMPION_VERSION} is the champion already"),
        (("end", "--keep", "challenger"), "no round is running"),
    ],
)
def test_refusals_name_the_input_and_write_nothing(
    workspace: Workspace, arguments: tuple[str, ...], refusal: str
) -> None:
    workspace.register(CHALLENGER_VERSION)
    workspace.register(CHAMPION_VERSION)

    code, output = workspace.run(*arguments)

    assert code == 1
    assert refusal in output
    assert not workspace.round_file.exists()


def test_an_unknown_version_is_refused_listing_the_registered_ones(workspace: Workspace) -> None:
    workspace.register(CHALLENGER_VERSION)

    _, output = workspace.run("start", "0123456789abcdef")

    assert f"(registered: {CHALLENGER_VERSION};" in output


def test_a_rejected_challenger_cannot_start_a_round(workspace: Workspace) -> None:
    workspace.register(CHALLENGER_VERSION)
    registered = find("headline-base", CHALLENGER_VERSION, workspace.registry)
    assert registered is not None
    set_status(registered, REJECTED)

    code, output = workspace.run("start", CHALLENGER_VERSION)

    assert code == 1
    assert f"headline-base {CHALLENGER_VERSION} is Rejected in the registry" in output


def test_only_one_round_runs_at_a_time(workspace: Workspace) -> None:
    workspace.register(CHALLENGER_VERSION)
    workspace.register("challenger000002")
    workspace.run("start", CHALLENGER_VERSION)

    code, output = workspace.run("start", "challenger000002")

    assert code == 1
    assert "a round is running" in output
    round_now = load_round(workspace.round_file)
    assert round_now is not None and round_now.challenger.version == CHALLENGER_VERSION


def test_no_built_champion_is_refused_with_the_command_that_builds_it(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    (workspace.models_root / "smoke" / "headline-base" / "manifest.json").unlink()
    workspace.register(CHALLENGER_VERSION)

    code, output = workspace.run("start", CHALLENGER_VERSION)

    assert code == 1
    assert "run `pressroom build-all --profile smoke`" in output


@pytest.mark.parametrize(("keep", "status"), [("challenger", APPROVED), ("champion", REJECTED)])
def test_ending_a_round_records_the_decision_and_removes_the_round(
    workspace: Workspace, keep: str, status: str
) -> None:
    workspace.register(CHALLENGER_VERSION)
    workspace.run("start", CHALLENGER_VERSION)
    registered = find("headline-base", CHALLENGER_VERSION, workspace.registry)
    assert registered is not None and registered.status == PENDING

    code, output = workspace.run("end", "--keep", keep)

    assert code == 0, output
    decided = find("headline-base", CHALLENGER_VERSION, workspace.registry)
    assert decided is not None and decided.status == status
    assert not workspace.round_file.exists()
    _, shown = workspace.run("show")
    assert shown == "no round: variant B serves headline-lite"
