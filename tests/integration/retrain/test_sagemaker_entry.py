"""The SageMaker entry point of `pressroom retrain-job`, run as the training toolkit runs it: from
the unpacked source dir (its root on PYTHONPATH), with the job's environment, the smoke champion
in the channel and a SQLite store of votes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from pressroom_common.feedback.store import open_store

from local.ops.retrain_job import ENTRY_POINT, write_source_dir
from tests.integration.retrain.test_retrain_command import record_votes
from training.artifacts import Artifact
from training.engine import CONVERTER_PYTHON
from training.feedback import sagemaker_entry
from training.package import content_version


def job_environment(tmp_path: Path, champion: Artifact | None, database_url: str) -> dict[str, str]:
    """The /opt/ml layout SageMaker gives a job, under tmp_path; the channel holds what
    `pressroom publish` uploads for the champion (none when `champion` is None)."""
    channel = tmp_path / "opt/ml/input/data/champion"
    channel.mkdir(parents=True)
    if champion is not None:
        shutil.copyfile(champion.tarball, channel / "model.tar.gz")
        shutil.copyfile(champion.directory.parent / "manifest.json", channel / "manifest.json")
    return {
        "DATABASE_URL": database_url,
        "SM_CHANNEL_CHAMPION": str(channel),
        "SM_MODEL_DIR": str(tmp_path / "opt/ml/model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "opt/ml/output/data"),
        "SM_OUTPUT_DIR": str(tmp_path / "opt/ml/output"),
    }


def votes_store(tmp_path: Path, up: int, down: int) -> str:
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    record_votes(open_store(url, migrate=True), up, down)
    return url


def test_too_few_votes_fail_the_job_with_the_reason_as_its_failure_reason(
    smoke_artifacts: dict[str, Artifact], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = job_environment(
        tmp_path, smoke_artifacts["headline-base"], votes_store(tmp_path, 3, 3)
    )
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    assert sagemaker_entry.main() == 1

    failure = (tmp_path / "opt/ml/output/failure").read_text()
    assert failure == (
        "Not retrained: too few votes: 6 in the store, retraining needs at least 8 (--min-votes)\n"
    )
    assert not (tmp_path / "opt/ml/model").exists()


def test_a_channel_without_the_champions_manifest_is_refused_naming_it(
    smoke_artifacts: dict[str, Artifact], tmp_path: Path
) -> None:
    environment = job_environment(tmp_path, None, votes_store(tmp_path, 6, 6))
    shutil.copyfile(
        smoke_artifacts["headline-base"].tarball,
        Path(environment["SM_CHANNEL_CHAMPION"]) / "model.tar.gz",
    )

    with pytest.raises(sagemaker_entry.RetrainRefused, match=r"lacks manifest\.json: publish"):
        sagemaker_entry.run(environment)


def test_a_job_without_its_database_url_is_refused() -> None:
    with pytest.raises(sagemaker_entry.RetrainRefused, match="DATABASE_URL is not set"):
        sagemaker_entry.run({})


@pytest.mark.slow
def test_the_job_leaves_the_challenger_where_sagemaker_collects_it(
    smoke_artifacts: dict[str, Artifact], tmp_path: Path
) -> None:
    champion = smoke_artifacts["headline-base"]
    environment = job_environment(tmp_path, champion, votes_store(tmp_path, 6, 5))
    code = tmp_path / "opt/ml/code"
    write_source_dir(tmp_path / "sourcedir.tar.gz")
    with tarfile.open(tmp_path / "sourcedir.tar.gz") as archive:
        archive.extractall(code, filter="data")

    # As the toolkit runs it: `python <sagemaker_program>` in the code dir, which it puts on
    # PYTHONPATH (ahead of the editable install, so the source dir's copy is what runs). The
    # converter is this checkout's (a job on AWS makes one from the source dir's pins).
    converter = {"PRESSROOM_CONVERTER_PYTHON": str(CONVERTER_PYTHON)}
    completed = subprocess.run(
        [sys.executable, ENTRY_POINT],
        cwd=code,
        env={**os.environ, **environment, **converter, "PYTHONPATH": str(code)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    model_dir, output = tmp_path / "opt/ml/model", tmp_path / "opt/ml/output/data"
    manifest = json.loads((output / "manifest.json").read_text())
    assert completed.stdout.split()[-1] == manifest["version"]
    # The job's model.tar.gz is SageMaker's tar of model_dir: the packaged layout, this version.
    assert (model_dir / "config.json").is_file() and (model_dir / "code/inference.py").is_file()
    assert content_version(model_dir) == manifest["version"] != champion.manifest["version"]
    learned = manifest["training"]["votes"]
    assert learned["source"] == {"name": "headline-base", "version": champion.manifest["version"]}
    assert (learned["examples"], learned["up"], learned["down"]) == (11, 6, 5)
    assert not (tmp_path / "opt/ml/output/failure").exists()
