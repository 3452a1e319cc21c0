"""`pressroom round`: a promoted challenger earns its traffic against the champion.

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
on those live answers before the canary (`local.rounds.shadow`).

What a round is, where it is kept and the parameters that serve it: `local.rounds.state`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from local.champion import ChampionError
from local.paths import DEFAULT_CAPTURE_ROOT, DEFAULT_METRICS_ROOT, DEFAULT_MODELS_ROOT
from local.registry import DEFAULT_REGISTRY_ROOT, RegisteredModel, find, versions
from local.rounds.shadow import (
    Hosting,
    Stage,
    gate_shadow_stage,
    hosting_problem,
    served_hosting_mode,
)
from local.rounds.state import (
    DEFAULT_SHARE,
    MAX_SHARE,
    ROUND_FILE,
    Keep,
    Round,
    RoundRefused,
    describe_round,
    end_round,
    load_round,
    save_round,
)
from training.feedback import CHAMPION

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
