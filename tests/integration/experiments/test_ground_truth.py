"""Votes as Model Monitor ground truth, and their join with the endpoint's data capture."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pressroom_common.feedback.contracts import Vote
from pressroom_common.feedback.store import VotedGeneration
from typer.testing import CliRunner

from local.cli import app
from local.devstack.stack import LocalStack
from local.emulate.sagemaker import Emulator
from local.experiment.ground_truth import export_ground_truth


def records(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, json.loads(line))
        for path in sorted(root.rglob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def test_a_voted_generations_capture_and_ground_truth_join_on_its_id(
    local_stack: LocalStack, sagemaker_emulator: Emulator, tmp_path: Path
) -> None:
    reader = {"X-User-Id": "ground-truth-reader"}
    with httpx.Client(base_url=local_stack.url, timeout=60) as client:
        generated = client.post(
            "/api/generate",
            json={"prompt": "Rates fall", "variant": "A", "max_new_tokens": 2},
            headers=reader,
        ).json()
        ballot = {
            "generation_id": generated["generation_id"],
            "vote": "down",
            "vote_token": generated["vote_token"],
        }
        assert client.post("/api/feedback", json=ballot, headers=reader).status_code == 200

    out = tmp_path / "ground-truth"
    result = CliRunner().invoke(
        app,
        ["export-ground-truth", "--database-url", local_stack.database_url, "--out", str(out)],
    )

    assert result.exit_code == 0, result.output
    generation_id = generated["generation_id"]
    [truth] = [r for _, r in records(out) if r["eventMetadata"]["eventId"] == generation_id]
    assert truth == {
        "groundTruthData": {"data": "0", "encoding": "CSV"},
        "eventMetadata": {"eventId": generation_id},
        "eventVersion": "0",
    }
    assert sagemaker_emulator.capture_root is not None
    [(path, captured)] = [
        (path, r)
        for path, r in records(sagemaker_emulator.capture_root)
        if r["eventMetadata"].get("inferenceId") == generation_id
    ]
    assert path.relative_to(sagemaker_emulator.capture_root).parts[1] == "A"
    assert json.loads(captured["captureData"]["endpointInput"]["data"])["inputs"] == "Rates fall"
    assert json.loads(captured["captureData"]["endpointOutput"]["data"]) == [
        {"generated_text": generated["text"]}
    ]


def voted(generation_id: str, vote: Vote, at: datetime) -> VotedGeneration:
    return VotedGeneration(
        generation_id=generation_id,
        prompt="p",
        text=" t",
        variant="A",
        model_name="headline-base",
        model_version="v1",
        vote=vote,
        voted_at=at,
    )


def test_an_export_is_a_snapshot_by_vote_hour_and_since_rewrites_whole_hours(
    tmp_path: Path,
) -> None:
    nine, ten = datetime(2026, 5, 13, 9, 5, tzinfo=UTC), datetime(2026, 5, 13, 10, 50)
    first = export_ground_truth([voted("g1", Vote.UP, nine), voted("g2", Vote.DOWN, ten)], tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in first.files] == [
        "2026/05/13/09/pressroom-votes.jsonl",
        "2026/05/13/10/pressroom-votes.jsonl",  # a naive time from SQLite is UTC
    ]

    # g1's reader changed their vote at 10:20: it leaves the 09 hour and joins the 10 one.
    changed = datetime(2026, 5, 13, 10, 20, tzinfo=UTC)
    now = [voted("g2", Vote.DOWN, ten), voted("g1", Vote.DOWN, changed)]
    # --since 10:30 covers the whole 10 hour (its file is rewritten) and leaves 09 alone.
    since = export_ground_truth(now, tmp_path, since=datetime(2026, 5, 13, 10, 30, tzinfo=UTC))

    assert (since.votes, since.removed) == (2, [])
    assert labels_of(tmp_path, "g1") == [("09", "1"), ("10", "0")]
    full = export_ground_truth(now, tmp_path)
    assert [p.relative_to(tmp_path).parts[3] for p in full.removed] == ["09"]
    assert labels_of(tmp_path, "g1") == [("10", "0")]
    assert labels_of(tmp_path, "g2") == [("10", "0")]


def labels_of(root: Path, generation_id: str) -> list[tuple[str, str]]:
    """(hour, label) of every ground truth line of one generation."""
    return [
        (path.relative_to(root).parts[3], record["groundTruthData"]["data"])
        for path, record in records(root)
        if record["eventMetadata"]["eventId"] == generation_id
    ]
