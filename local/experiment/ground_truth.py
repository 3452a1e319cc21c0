"""`pressroom export-ground-truth`: readers' votes as SageMaker Model Monitor ground truth.

Each vote as it stands (a changed vote counts once, with its new value) becomes one line::

    {"groundTruthData": {"data": "1", "encoding": "CSV"},
     "eventMetadata": {"eventId": "<generation id>"}, "eventVersion": "0"}

`data` is `1` for up and `0` for down. The generate function sends the generation id as every
model call's InferenceId, so the data capture's `eventMetadata.inferenceId` equals this
`eventId` and Model Monitor joins a vote to the request and answer it judged. Files follow
capture's partitioning, by the UTC hour the label was collected (the vote's time, as Model
Monitor expects): `<out>/<yyyy>/<mm>/<dd>/<hh>/pressroom-votes.jsonl`. An export is a snapshot:
it rewrites each hour's file, and removes the files of hours it covers that no longer hold a
vote (a changed vote moves to the hour it changed in).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pressroom_common.feedback.store import VotedGeneration
from pressroom_common.records import Vote
from rich.console import Console
from rich.progress import Progress

from local.devstack.logview import parse_since
from local.emulate.sagemaker.capture import hour_directory
from local.paths import BUILD_DIR, DEFAULT_DATABASE_URL

commands = typer.Typer()

DEFAULT_OUT = BUILD_DIR / "ground-truth"
FILE_NAME = "pressroom-votes.jsonl"
LABELS = {Vote.UP: "1", Vote.DOWN: "0"}
HOUR_GLOB = "[0-9][0-9][0-9][0-9]/[0-9][0-9]/[0-9][0-9]/[0-9][0-9]"


def ground_truth_record(vote: VotedGeneration) -> dict[str, Any]:
    """Model Monitor's ground truth line for one vote."""
    return {
        "groundTruthData": {"data": LABELS[vote.vote], "encoding": "CSV"},
        "eventMetadata": {"eventId": vote.generation_id},
        "eventVersion": "0",
    }


@dataclass(frozen=True)
class Exported:
    votes: int
    files: list[Path]
    removed: list[Path]


def export_ground_truth(
    votes: Iterable[VotedGeneration],
    out: Path,
    since: datetime | None = None,
    on_vote: Callable[[], None] | None = None,
) -> Exported:
    """Write the votes cast (or last changed) since `since` under `out`, one file per hour.

    `since` is taken back to the start of its UTC hour, so every hour written holds all of its
    votes and its file can be replaced whole.
    """
    start = None if since is None else _utc(since).replace(minute=0, second=0, microsecond=0)
    by_hour: dict[Path, list[str]] = defaultdict(list)
    count = 0
    for vote in votes:
        if on_vote is not None:
            on_vote()
        voted_at = _utc(vote.voted_at)
        if start is not None and voted_at < start:
            continue
        by_hour[hour_directory(out, voted_at)].append(json.dumps(ground_truth_record(vote)))
        count += 1
    files = [_write(directory / FILE_NAME, lines) for directory, lines in sorted(by_hour.items())]
    stale = [
        path
        for path in out.glob(f"{HOUR_GLOB}/{FILE_NAME}")
        if path not in files and (start is None or _hour_of(path, out) >= start)
    ]
    for path in stale:
        path.unlink()
    return Exported(votes=count, files=files, removed=stale)


@commands.command("export-ground-truth")
def export_ground_truth_command(
    database_url: Annotated[
        str,
        typer.Option(help="Feedback store: sqlite:///path, postgresql+psycopg://..., Aurora."),
    ] = DEFAULT_DATABASE_URL,
    out: Annotated[Path, typer.Option(help="Folder of the ground truth files.")] = DEFAULT_OUT,
    since: Annotated[
        str | None,
        typer.Option(help="Only votes since then: 2h, 1d, or a time such as 2026-01-01T09:00."),
    ] = None,
) -> None:
    """Export the readers' votes as SageMaker Model Monitor ground truth (joins data capture on
    the generation id)."""
    from training.feedback import RetrainRefused
    from training.feedback.votes import load_votes

    console = Console(stderr=True)
    start = None if since is None else datetime.fromtimestamp(parse_since(since), UTC)
    try:
        votes = load_votes(database_url)
    except RetrainRefused as refusal:
        console.print(f"[red]Not exported:[/] {refusal}")
        raise typer.Exit(1) from None
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Exporting votes", total=len(votes))
        exported = export_ground_truth(votes, out, start, on_vote=lambda: progress.advance(task))
    console.print(
        f"[green]exported[/] {exported.votes} vote(s) into {len(exported.files)} file(s) "
        f"under {out}" + (f"; removed {len(exported.removed)} stale" if exported.removed else "")
    )


def _write(path: Path, lines: list[str]) -> Path:
    """Replace `path` whole: a reader never sees half an hour's file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    partial.replace(path)
    return path


def _hour_of(path: Path, out: Path) -> datetime:
    year, month, day, hour = (int(part) for part in path.relative_to(out).parts[:4])
    return datetime(year, month, day, hour, tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; the store writes UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
