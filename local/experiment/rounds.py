"""Experiment rounds: a promoted challenger earns its traffic against the champion.

A round puts a registered challenger (a newer version of headline-base, retrained on readers'
votes) on variant B at a small share of the traffic (a canary) beside the champion on variant
A. Thompson sampling routes on the round's own votes (`ExperimentStartedAt`), so traffic moves
to whichever readers prefer, and the guardrail drains B if it fails or slows. `/api/stats`
reports the round alone.

`pressroom round start VERSION` writes the round to `build/local/round.json`, `pressroom up`
serves it (`round_parameters`), and `pressroom round end --keep champion|challenger` records
the decision in the local model registry (Approved or Rejected) and ends the round.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from local.emulate.sagemaker.endpoints import registry_artifact_url
from local.paths import BUILD_DIR, DEFAULT_MODELS_ROOT
from local.registry import (
    APPROVED,
    DEFAULT_REGISTRY_ROOT,
    REJECTED,
    RegisteredModel,
    find,
    set_status,
    versions,
)
from training.feedback import CHAMPION

ROUND_FILE = BUILD_DIR / "local" / "round.json"
MAX_SHARE = 0.5  # a canary: the challenger never starts with more traffic than the champion
DEFAULT_SHARE = 0.1


class RoundRefused(Exception):
    """A round that cannot start, be served or end; the message says which input and why."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str


@dataclass(frozen=True)
class Round:
    """One experiment round: the champion on variant A, the challenger on B at `share`."""

    champion: ModelVersion
    challenger: ModelVersion
    share: float
    started_at: datetime

    @classmethod
    def start(
        cls,
        challenger: RegisteredModel,
        *,
        share: float,
        started_at: datetime,
        models_root: Path = DEFAULT_MODELS_ROOT,
    ) -> Round:
        """A round of `challenger` against the built champion of the challenger's profile."""
        if (problem := share_problem(share)) is not None:
            raise RoundRefused(problem)
        if challenger.name != CHAMPION:
            raise RoundRefused(
                f"{challenger.name} {challenger.version}: only a {CHAMPION} version "
                "can challenge (variant B serves the challenger in its place)"
            )
        if challenger.status == REJECTED:
            why = challenger.reason or "a round it lost, or a person's decision"
            raise RoundRefused(
                f"{challenger.name} {challenger.version} is Rejected in the registry ({why}); "
                "retrain for a new challenger"
            )
        profile = str(challenger.manifest["profile"])
        champion_manifest = models_root / profile / CHAMPION / "manifest.json"
        if not champion_manifest.is_file():
            raise RoundRefused(
                f"no champion: {CHAMPION} is not built for profile {profile} in "
                f"{models_root} (run `pressroom build-all --profile {profile}`)"
            )
        champion_version = str(json.loads(champion_manifest.read_text())["version"])
        if champion_version == challenger.version:
            raise RoundRefused(
                f"{challenger.name} {challenger.version} is the champion already: "
                "nothing to challenge"
            )
        return cls(
            champion=ModelVersion(CHAMPION, champion_version),
            challenger=ModelVersion(challenger.name, challenger.version),
            share=share,
            # Whole seconds: what ExperimentStartedAt carries is what the round says.
            started_at=started_at.astimezone(UTC).replace(microsecond=0),
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "started_at": self.started_at.isoformat(timespec="seconds")}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Round:
        return cls(
            champion=ModelVersion(**record["champion"]),
            challenger=ModelVersion(**record["challenger"]),
            share=float(record["share"]),
            started_at=datetime.fromisoformat(record["started_at"]),
        )


def round_parameters(
    experiment_round: Round, registry_root: Path = DEFAULT_REGISTRY_ROOT
) -> dict[str, str]:
    """The root-template parameter overrides that serve `experiment_round` (for `LocalStack`,
    whose `registry_root` must be the same): the challenger on variant B at the round's share,
    Thompson sampling, and the round's start for the counts and `/api/stats`."""
    challenger = experiment_round.challenger
    if find(challenger.name, challenger.version, registry_root) is None:
        raise RoundRefused(
            f"ChallengerModelVersion {challenger.version}: {challenger.name} of that version "
            f"is not registered in {registry_root}"
        )
    return round_overrides(
        data_url=registry_artifact_url(challenger.name, challenger.version),
        version=challenger.version,
        share=experiment_round.share,
        started_at=experiment_round.started_at.isoformat(timespec="seconds"),
    )


def round_overrides(
    *, data_url: str, version: str, share: float, started_at: str
) -> dict[str, str]:
    """Root-template parameters of an experiment round, locally and on AWS: the challenger
    artifact at `data_url` on variant B at `share` of the traffic (the rest to A), Thompson
    sampling, and the round's start (ISO 8601) for the counts and `/api/stats`."""
    return {
        "ChallengerModelDataUrl": data_url,
        "ChallengerModelVersion": version,
        "VariantAWeight": f"{1 - share:g}",
        "VariantBWeight": f"{share:g}",
        "RoutingStrategy": "thompson",
        "ExperimentStartedAt": started_at,
    }


# The root parameters a round sets, in one place: what a deploy keeps from the running stack.
ROUND_PARAMETERS = tuple(
    round_overrides(data_url="", version="", share=DEFAULT_SHARE, started_at="")
)


def share_problem(share: float) -> str | None:
    """Why `share` cannot be a challenger's first share of traffic (`--share`), or None."""
    if 0 < share <= MAX_SHARE:
        return None
    return (
        f"--share {share:g}: the challenger's share must be above 0 and at most {MAX_SHARE:g} "
        "(a canary; the bandit moves traffic from there)"
    )


def save_round(experiment_round: Round, path: Path = ROUND_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(experiment_round.to_json(), indent=2) + "\n")


def load_round(path: Path = ROUND_FILE) -> Round | None:
    """The current round, or None when none is running."""
    if not path.is_file():
        return None
    return Round.from_json(json.loads(path.read_text()))


class Keep(StrEnum):
    CHAMPION = "champion"
    CHALLENGER = "challenger"


def end_round(
    experiment_round: Round, keep: Keep, registry_root: Path = DEFAULT_REGISTRY_ROOT
) -> RegisteredModel:
    """Record the decision on the challenger: Approved when kept, Rejected otherwise."""
    challenger = experiment_round.challenger
    registered = find(challenger.name, challenger.version, registry_root)
    if registered is None:
        raise RoundRefused(
            f"{challenger.name} {challenger.version}: not registered in {registry_root}, "
            "so there is no status to record"
        )
    return set_status(registered, APPROVED if keep is Keep.CHALLENGER else REJECTED)


def describe_round(experiment_round: Round) -> str:
    """One line: who is on which variant, at what share, since when."""
    champion, challenger = experiment_round.champion, experiment_round.challenger
    return (
        f"champion {champion.name} {champion.version} on A, challenger {challenger.name} "
        f"{challenger.version} on B at {experiment_round.share:.0%}, since "
        f"{experiment_round.started_at.isoformat(timespec='seconds')}"
    )


# --------------------------------------------------------------------------- commands

commands = typer.Typer(
    name="round",
    help="Experiment rounds: a registered challenger against the champion, on variant B.",
    no_args_is_help=True,
)
RoundFileOption = Annotated[Path, typer.Option(help="Where the current round is kept.")]
RegistryOption = Annotated[Path, typer.Option(help="The local model registry.")]


@commands.command("start")
def start_command(
    version: Annotated[str, typer.Argument(help=f"Registered {CHAMPION} version.")],
    share: Annotated[
        float, typer.Option(help=f"The challenger's first share of traffic, in (0, {MAX_SHARE}].")
    ] = DEFAULT_SHARE,
    registry: RegistryOption = DEFAULT_REGISTRY_ROOT,
    models_root: Annotated[Path, typer.Option(help="Where built models live.")] = (
        DEFAULT_MODELS_ROOT
    ),
    round_file: RoundFileOption = ROUND_FILE,
) -> None:
    """Promote a registered challenger: start a round that `pressroom up` serves."""
    console = Console(stderr=True)
    with _refusals(console, "Not started"):
        if load_round(round_file) is not None:
            raise RoundRefused(f"a round is running ({round_file}): end it first")
        registered = find(CHAMPION, version, registry)
        if registered is None:
            known = ", ".join(model.version for model in versions(CHAMPION, registry))
            raise RoundRefused(
                f"{CHAMPION} {version} is not registered in {registry} "
                f"(registered: {known or 'none'}; `pressroom retrain` registers challengers)"
            )
        experiment_round = Round.start(
            registered, share=share, started_at=datetime.now(UTC), models_root=models_root
        )
        save_round(experiment_round, round_file)
    console.print(
        f"[green]round started[/]: {describe_round(experiment_round)}; `pressroom up` serves it"
    )


@commands.command("show")
def show_command(round_file: RoundFileOption = ROUND_FILE) -> None:
    """The current round, if any."""
    experiment_round = load_round(round_file)
    if experiment_round is None:
        typer.echo("no round: variant B serves headline-lite")
        return
    typer.echo(describe_round(experiment_round))


@commands.command("end")
def end_command(
    keep: Annotated[Keep, typer.Option(help="The model that stays: champion or challenger.")],
    registry: RegistryOption = DEFAULT_REGISTRY_ROOT,
    round_file: RoundFileOption = ROUND_FILE,
) -> None:
    """End the round: the challenger is Approved when kept, Rejected otherwise."""
    console = Console(stderr=True)
    with _refusals(console, "Not ended"):
        experiment_round = load_round(round_file)
        if experiment_round is None:
            raise RoundRefused(f"no round is running ({round_file} does not exist)")
        decided = end_round(experiment_round, keep, registry)
        round_file.unlink()
    console.print(f"[green]round ended[/]: {decided.name} {decided.version} is {decided.status}")


@contextmanager
def _refusals(console: Console, what: str) -> Iterator[None]:
    """A refusal ends the command with its one-line reason on stderr, not a traceback."""
    try:
        yield
    except RoundRefused as refusal:
        console.print(f"[red]{what}:[/] {refusal}")
        raise typer.Exit(1) from None
