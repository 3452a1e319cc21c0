"""The `pressroom` training commands, through the real CLI entry point."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import training.cli
from local.cli import app
from training.data import build_corpus


def test_data_command_writes_the_corpus_and_prints_its_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus_file = tmp_path / "data" / "headlines.jsonl"  # not the repository's build/data
    monkeypatch.setattr(training.cli, "CORPUS_FILE", corpus_file)
    result = CliRunner().invoke(app, ["data"])
    assert result.exit_code == 0, result.output
    assert "Headlines per source" in result.output and "BBC headlines per category" in result.output
    lines = corpus_file.read_text().splitlines()
    assert len(lines) == len(build_corpus().headlines)
    assert set(json.loads(lines[0])) == {"text", "source", "category", "split", "publisher"}


def test_unknown_model_is_named_in_the_error() -> None:
    result = CliRunner().invoke(app, ["train", "headline-huge", "--profile", "smoke"])
    assert result.exit_code != 0
    assert "unknown model 'headline-huge'" in result.output
