"""`pressroom retrain`: the votes in the feedback store train a challenger, registered locally.

This composes the local model registry and champion (`local.registry`, `local.champion`) with
the training code (`training.feedback.retrain`), so it lives in `local`: `training` never
imports `local`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from local.champion import ChampionError, local_champion
from local.paths import DEFAULT_DATABASE_URL, DEFAULT_MODELS_ROOT
from local.registry import (
    DEFAULT_REGISTRY_ROOT,
    REJECTED,
    RegisteredModel,
    register,
    set_status,
    versions,
)
from training.feedback import CHAMPION, RetrainRefused

commands = typer.Typer()


def resolve_champion(
    version: str | None, profile: str, models_root: Path, registry_root: Path
) -> Path:
    """The folder of the champion to retrain: `profile`'s local champion (the version a round
    promoted, else the built headline-base: `local.champion`), or the given `version` of it,
    built or registered."""
    from training.artifacts import Artifact

    built = Artifact.read(models_root / profile / CHAMPION)
    if version is None:
        try:
            champion = local_champion(profile, models_root, registry_root)
        except ChampionError as error:
            raise RetrainRefused(f"no champion: {error}") from None
        if champion is None or (champion.promoted is None and built is None):
            raise RetrainRefused(
                f"no champion: {CHAMPION} is not built for profile {profile} "
                f"(run `pressroom build-all --profile {profile}`)"
            )
        return champion.directory
    if built is not None and built.manifest["version"] == version:
        return built.directory.parent
    registered = {model.version: model for model in versions(CHAMPION, registry_root)}
    if version in registered:
        return registered[version].directory
    known = ([built.manifest["version"]] if built else []) + sorted(registered)
    raise RetrainRefused(
        f"--champion {version}: no {CHAMPION} of that version is built or registered "
        f"(known: {', '.join(known) or 'none'})"
    )


@commands.command()
def retrain(
    database_url: Annotated[
        str,
        typer.Option(help="Feedback store: sqlite:///path, postgresql+psycopg://..., Aurora."),
    ] = DEFAULT_DATABASE_URL,
    profile: Annotated[str, typer.Option(help="Profile of the champion: full or smoke.")] = "full",
    champion: Annotated[
        str | None,
        typer.Option(help=f"Version of {CHAMPION} to start from (default: the champion)."),
    ] = None,
    min_votes: Annotated[int | None, typer.Option(min=2, help="Fewest votes.")] = None,
    min_each: Annotated[
        int | None, typer.Option(min=1, help="Fewest up-votes, and fewest down-votes.")
    ] = None,
    down_vote_weight: Annotated[
        float | None, typer.Option(min=0, help="Unlikelihood weight of a down-vote (0: ignore).")
    ] = None,
    anchor_weight: Annotated[
        float | None,
        typer.Option(min=0, help="Weight of KL(champion || challenger) on voted text (0: off)."),
    ] = None,
    models_root: Annotated[Path, typer.Option(help="Where built models live.")] = (
        DEFAULT_MODELS_ROOT
    ),
    registry: Annotated[Path, typer.Option(help="The local model registry.")] = (
        DEFAULT_REGISTRY_ROOT
    ),
) -> None:
    """Fine-tune the champion on readers' votes; register the challenger: PendingManualApproval,
    or Rejected with the reasons when it fails the offline gate (then the exit status is 1)."""
    console = Console(stderr=True)
    try:
        registered = run_retrain(
            database_url,
            profile=profile,
            champion_version=champion,
            overrides={
                "min_votes": min_votes,
                "min_each": min_each,
                "down_vote_weight": down_vote_weight,
                "anchor_weight": anchor_weight,
            },
            models_root=models_root,
            registry_root=registry,
            console=console,
        )
    except RetrainRefused as refusal:
        console.print(f"[red]Not retrained:[/] {refusal}")
        raise typer.Exit(1) from None
    colour = "red" if registered.status == REJECTED else "green"
    console.print(
        f"[{colour}]registered[/] {registered.name} {registered.version} "
        f"({registered.status}) in {registered.directory}; model card: "
        f"{registered.model_dir / 'README.md'}"
    )
    typer.echo(registered.version)
    if registered.status == REJECTED:
        console.print(f"[red]Not servable:[/] {registered.reason}")
        raise typer.Exit(1)


def run_retrain(
    database_url: str,
    *,
    profile: str,
    champion_version: str | None,
    overrides: dict[str, float | int | None],
    models_root: Path,
    registry_root: Path,
    console: Console,
) -> RegisteredModel:
    """Refuse early (champion, store, vote counts), then train and register; on any failure
    nothing is left in the registry. A challenger the offline gate fails is registered Rejected
    with the reasons (its card shows the figures), so it is on record but never served."""
    from training.feedback.retrain import Champion, check_enough, retrain, settings_for
    from training.feedback.votes import load_votes

    champion = Champion(resolve_champion(champion_version, profile, models_root, registry_root))
    with console.status("reading the votes"):
        votes = load_votes(database_url)
    settings = settings_for(profile).model_copy(
        update={name: value for name, value in overrides.items() if value is not None}
    )
    check_enough(votes, settings)
    registry_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".retrain-", dir=registry_root))
    try:
        manifest = retrain(votes, champion, staging, console=console, settings=settings)
        source = manifest["training"]["votes"]["source"]
        registered = register(
            staging,
            f"challenger: {source['name']} {source['version']} retrained on "
            f"{len(votes)} readers' votes",
            registry_root,
        )
        gate = manifest["training"]["gate"]
        if gate["passed"]:
            return registered
        return set_status(registered, REJECTED, "the offline gate: " + "; ".join(gate["reasons"]))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
