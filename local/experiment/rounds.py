"""Experiment rounds: a promoted challenger earns its traffic against the champion.

A round puts a registered challenger (a newer version of headline-base, retrained on readers'
votes) on variant B at a small share of the traffic (a canary) beside the champion on variant
A. Thompson sampling routes on the round's own votes (`ExperimentStartedAt`), so traffic moves
to whichever readers prefer, and the guardrail drains B if it fails or slows. `/api/stats`
reports the round alone.

`pressroom round start VERSION` writes the round to `build/local/round.json`, `pressroom up`
serves it (`round_parameters`), and `pressroom round end --keep champion|challenger` records
the decision in the local model registry (Approved or Rejected) and ends the round.

A round may first run a shadow stage (`pressroom round shadow VERSION`, realtime hosting only):
the challenger answers a copy of every request unseen, and `round start VERSION` then gates it
on those live answers before the canary (`local.experiment.shadow`).
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

from local.champion import ChampionError, local_champion, record_champion
from local.emulate.sagemaker.endpoints import registry_artifact_url
from local.experiment.shadow import (
    SHADOW_VARIANT,
    Hosting,
    Stage,
    gate_shadow_stage,
    hosting_problem,
    served_hosting_mode,
    shadow_overrides,
)
from local.paths import BUILD_DIR, DEFAULT_CAPTURE_ROOT, DEFAULT_METRICS_ROOT, DEFAULT_MODELS_ROOT
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
    """One experiment round: the champion on variant A, the challenger on B at `share` (its
    canary stage) or as A's shadow, answering unseen (its shadow stage)."""

    champion: ModelVersion
    challenger: ModelVersion
    share: float
    started_at: datetime
    stage: Stage = Stage.CANARY

    @classmethod
    def start(
        cls,
        challenger: RegisteredModel,
        *,
        share: float,
        started_at: datetime,
        models_root: Path = DEFAULT_MODELS_ROOT,
        stage: Stage = Stage.CANARY,
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
        # The champion: the one a round promoted in the challenger's registry, else the built.
        try:
            champion = local_champion(profile, models_root, challenger.directory.parent.parent)
        except ChampionError as error:
            raise RoundRefused(f"no champion: {error}") from None
        if champion is None:
            raise RoundRefused(
                f"no champion: {CHAMPION} is not built for profile {profile} in "
                f"{models_root} (run `pressroom build-all --profile {profile}`)"
            )
        champion_version = champion.version
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
            stage=stage,
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
            stage=Stage(record.get("stage", Stage.CANARY)),
        )


def round_parameters(
    experiment_round: Round, registry_root: Path = DEFAULT_REGISTRY_ROOT
) -> dict[str, str]:
    """The root-template parameter overrides that serve `experiment_round` (for `LocalStack`,
    whose `registry_root` must be the same): the challenger on variant B at the round's share,
    Thompson sampling, and the round's start for the counts and `/api/stats`; in the shadow
    stage, the challenger as the generator's shadow (`shadow_overrides`)."""
    challenger = experiment_round.challenger
    if find(challenger.name, challenger.version, registry_root) is None:
        raise RoundRefused(
            f"ChallengerModelVersion {challenger.version}: {challenger.name} of that version "
            f"is not registered in {registry_root}"
        )
    data_url = registry_artifact_url(challenger.name, challenger.version)
    started_at = experiment_round.started_at.isoformat(timespec="seconds")
    if experiment_round.stage is Stage.SHADOW:
        return shadow_overrides(
            data_url=data_url, version=challenger.version, started_at=started_at
        )
    return round_overrides(
        data_url=data_url,
        version=challenger.version,
        share=experiment_round.share,
        started_at=started_at,
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
    experiment_round: Round,
    keep: Keep,
    registry_root: Path = DEFAULT_REGISTRY_ROOT,
    reason: str | None = None,
) -> RegisteredModel:
    """Record the decision on the challenger, and why: Approved when kept, and then the champion
    that variant A serves from the next `pressroom up` (`local.champion`); Rejected otherwise."""
    challenger = experiment_round.challenger
    registered = find(challenger.name, challenger.version, registry_root)
    if registered is None:
        raise RoundRefused(
            f"{challenger.name} {challenger.version}: not registered in {registry_root}, "
            "so there is no status to record"
        )
    decided = set_status(registered, APPROVED if keep is Keep.CHALLENGER else REJECTED, reason)
    if keep is Keep.CHALLENGER:
        record_champion(decided, replaced=experiment_round.champion.version, reason=reason)
    return decided


def describe_round(experiment_round: Round) -> str:
    """One line: who is on which variant, at what share, since when."""
    champion, challenger = experiment_round.champion, experiment_round.challenger
    if experiment_round.stage is Stage.SHADOW:
        return (
            f"champion {champion.name} {champion.version} on A answers every reader; challenger "
            f"{challenger.name} {challenger.version} shadows it (variant {SHADOW_VARIANT}: its "
            "answers captured, never served), since "
            f"{experiment_round.started_at.isoformat(timespec='seconds')}"
        )
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
ModelsRootOption = Annotated[Path, typer.Option(help="Where built models live.")]


@commands.command("start")
def start_command(
    version: Annotated[str, typer.Argument(help=f"Registered {CHAMPION} version.")],
    share: Annotated[
        float, typer.Option(help=f"The challenger's first share of traffic, in (0, {MAX_SHARE}].")
    ] = DEFAULT_SHARE,
    registry: RegistryOption = DEFAULT_REGISTRY_ROOT,
    models_root: ModelsRootOption = DEFAULT_MODELS_ROOT,
    round_file: RoundFileOption = ROUND_FILE,
    capture_root: Annotated[
        Path, typer.Option(help="Data capture of a shadow stage (what the emulator wrote).")
    ] = DEFAULT_CAPTURE_ROOT,
    metrics_root: Annotated[
        Path, typer.Option(help="Invocation metrics of a shadow stage (the emulator's).")
    ] = DEFAULT_METRICS_ROOT,
) -> None:
    """Promote a registered challenger: start a round that `pressroom up` serves. After
    `round shadow` of the same version, the shadow's live answers are gated first."""
    console = Console(stderr=True)
    with _refusals(console, "Not started"):
        running = load_round(round_file)
        shadowed = (
            running is not None
            and running.stage is Stage.SHADOW
            and running.challenger.version == version
        )
        if running is not None and not shadowed:
            raise RoundRefused(f"a round is running ({round_file}): end it first")
        registered = _registered(version, registry)
        experiment_round = Round.start(
            registered, share=share, started_at=datetime.now(UTC), models_root=models_root
        )
        if running is not None:
            failure = gate_shadow_stage(registered, running.started_at, capture_root, metrics_root)
            if failure is not None:
                round_file.unlink()  # the challenger is Rejected: nothing left to shadow
                raise RoundRefused(f"{failure}; the round has ended")
            console.print("[green]the shadow stage passed the gate on its live answers[/]")
        save_round(experiment_round, round_file)
    console.print(
        f"[green]round started[/]: {describe_round(experiment_round)}; `pressroom up` serves it"
    )


@commands.command("shadow")
def shadow_command(
    version: Annotated[str, typer.Argument(help=f"Registered {CHAMPION} version.")],
    hosting_mode: Annotated[
        Hosting | None,
        typer.Option(help="The hosting mode served (default: the root template's, realtime)."),
    ] = None,
    registry: RegistryOption = DEFAULT_REGISTRY_ROOT,
    models_root: ModelsRootOption = DEFAULT_MODELS_ROOT,
    round_file: RoundFileOption = ROUND_FILE,
) -> None:
    """Start a round in its shadow stage: the challenger answers every request unseen beside
    the champion; `round start` of the same version gates it on those answers."""
    console = Console(stderr=True)
    with _refusals(console, "Not started"):
        if (problem := hosting_problem(hosting_mode or served_hosting_mode())) is not None:
            raise RoundRefused(problem)
        if load_round(round_file) is not None:
            raise RoundRefused(f"a round is running ({round_file}): end it first")
        experiment_round = Round.start(
            _registered(version, registry),
            share=DEFAULT_SHARE,
            started_at=datetime.now(UTC),
            models_root=models_root,
            stage=Stage.SHADOW,
        )
        save_round(experiment_round, round_file)
    console.print(
        f"[green]shadow stage started[/]: {describe_round(experiment_round)}; `pressroom up` "
        f"serves it, and `pressroom round start {version}` gates it for the canary"
    )


def _registered(version: str, registry: Path) -> RegisteredModel:
    registered = find(CHAMPION, version, registry)
    if registered is None:
        known = ", ".join(model.version for model in versions(CHAMPION, registry))
        raise RoundRefused(
            f"{CHAMPION} {version} is not registered in {registry} "
            f"(registered: {known or 'none'}; `pressroom retrain` registers challengers)"
        )
    return registered


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


@commands.command("decide")
def decide_command(
    api_url: Annotated[
        str, typer.Option(help="Base URL of the running stack (`pressroom up`); its /api/stats.")
    ] = "http://127.0.0.1:8080",
    env: Annotated[
        str | None,
        typer.Option(
            help="Decide ENV's deployed round instead (samconfig.toml: dev, prod): its ApiUrl "
            "output and the model registry; a redeploy with END_ROUND=1 then ends it."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what it would decide; change nothing.")
    ] = False,
    registry: RegistryOption = DEFAULT_REGISTRY_ROOT,
    round_file: RoundFileOption = ROUND_FILE,
) -> None:
    """End the round when /api/stats is decisive or the guardrail tripped: promote the
    challenger (Approved, the champion on A from the next start) or reject it, else say why it
    waits. Exit 0 decided, 3 waiting, 4 no round running, 1 an error."""
    from local.experiment import decide

    console = Console(stderr=True)
    try:
        if env is not None:
            code = decide.decide_aws(environment=env, dry_run=dry_run, console=console)
        else:
            code = decide.decide_local(
                api_url=api_url,
                round_file=round_file,
                registry_root=registry,
                dry_run=dry_run,
                console=console,
            )
    except decide.NoRound as nothing:
        console.print(f"[yellow]Nothing to decide:[/] {nothing}")
        raise typer.Exit(decide.EXIT_NO_ROUND) from None
    except (decide.DecideError, RoundRefused, ChampionError) as error:
        console.print(f"[red]Not decided:[/] {error}")
        raise typer.Exit(decide.EXIT_ERROR) from None
    raise typer.Exit(code)
