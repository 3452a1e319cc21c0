"""`pressroom retrain-job`: the CreateTrainingJob request, the store and champion it is made of,
the wait for the job, the challenger's registration (moto's S3 and SageMaker, a stubbed
CloudFormation), and a source dir that holds everything the entry point imports."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from typer.testing import CliRunner

import local.ops.retrain_job as retrain_job
from local.cfn import load_template
from local.cli import app
from local.ops.publish import VERSION_KEY, find_package, manifest_key
from local.ops.retrain_job import (
    CHALLENGER_GROUP,
    ENTRY_POINT,
    PublishedChampion,
    RetrainJob,
    RetrainJobError,
    feedback_database_url,
    new_job_name,
    served_champion,
    training_job_request,
    training_role_arn,
    wait_for_job,
    write_source_dir,
)
from local.paths import REPO_ROOT
from local.registry import PENDING, REJECTED
from tests.fixtures.retrain_job import (
    ACCOUNT_ID,
    BUCKET,
    CHALLENGER_VERSION,
    CHAMPION_VERSION,
    DATABASE_URL,
    JOB_NAME,
    REGION,
    client,
    play_the_job,
    publish_champion,
    run_retrain_job,
    stubbed_cloudformation,
)

CHAMPION = PublishedChampion(CHAMPION_VERSION, BUCKET, f"models/headline-base/{CHAMPION_VERSION}/")
JOB = RetrainJob(
    name=JOB_NAME,
    environment="dev",
    region=REGION,
    role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/pressroom-deploy/pressroom-dev-retrain-job",
    champion=CHAMPION,
    database_url=DATABASE_URL,
)


def test_the_request_runs_the_entry_point_on_the_champion_with_the_environments_store() -> None:
    request = training_job_request(JOB)

    assert request == {
        "TrainingJobName": JOB_NAME,
        "RoleArn": JOB.role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": f"763104351884.dkr.ecr.{REGION}.amazonaws.com/"
            "huggingface-pytorch-training:2.8.0-transformers4.56.2-gpu-py312-cu129-ubuntu22.04",
            "TrainingInputMode": "File",
        },
        # JSON-encoded, as the SDK sends them and the training toolkit decodes them.
        "HyperParameters": {
            "sagemaker_program": '"training/feedback/sagemaker_entry.py"',
            "sagemaker_submit_directory": (
                f'"s3://{BUCKET}/retrain/dev/{JOB_NAME}/sourcedir.tar.gz"'
            ),
            "sagemaker_region": f'"{REGION}"',
        },
        "InputDataConfig": [
            {
                "ChannelName": "champion",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{BUCKET}/models/headline-base/{CHAMPION_VERSION}/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {
            "S3OutputPath": f"s3://{BUCKET}/models/headline-base/challengers/dev/"
        },
        "ResourceConfig": {
            "InstanceType": "ml.m5.xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 7200},
        "Environment": {"DATABASE_URL": DATABASE_URL},
        "EnableNetworkIsolation": False,
    }
    # botocore accepts it as a CreateTrainingJob request.
    sagemaker = client("sagemaker")
    with Stubber(sagemaker) as stubber:
        stubber.add_response(
            "create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:x"}, request
        )
        sagemaker.create_training_job(**request)


def test_job_names_say_the_environment_and_fit_sagemakers_rules() -> None:
    name = new_job_name("prod", datetime(2026, 12, 7, 4, 17, 0, tzinfo=UTC))

    assert name == "pressroom-prod-retrain-20261207-041700"
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name)


def test_the_job_role_is_the_one_each_environment_creates() -> None:
    role = load_template(REPO_ROOT / "infra" / "environment.yaml")["Resources"]["RetrainJobRole"]
    name = role["Properties"]["RoleName"]["Fn::Sub"].replace("${Environment}", "dev")

    assert training_role_arn("aws", ACCOUNT_ID, "dev") == (
        f"arn:aws:iam::{ACCOUNT_ID}:role{role['Properties']['Path']}{name}"
    )


def test_the_database_url_is_the_feedback_apps_stack_output() -> None:
    outputs = load_template(REPO_ROOT / "apps" / "feedback" / "template.yaml")["Outputs"]
    assert "postgresql+auroradataapi://" in outputs["DatabaseUrl"]["Value"]["Fn::Sub"]
    cloudformation, stubber = stubbed_cloudformation()

    assert feedback_database_url(cloudformation, "pressroom-dev") == DATABASE_URL
    stubber.assert_no_pending_responses()


def test_a_job_starts_on_the_champion_dev_serves_with_its_code_uploaded(
    tmp_path: Path, commands_aws: None
) -> None:
    run = run_retrain_job(tmp_path)

    described = client("sagemaker").describe_training_job(TrainingJobName=JOB_NAME)
    assert described["RoleArn"] == JOB.role_arn
    assert described["HyperParameters"] == training_job_request(JOB)["HyperParameters"]
    [channel] = described["InputDataConfig"]
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == CHAMPION.channel_uri
    assert run.job.database_url == DATABASE_URL
    # The channel's prefix holds exactly the champion's tarball and manifest.
    listed = client("s3").list_objects_v2(Bucket=BUCKET, Prefix=CHAMPION.prefix)["Contents"]
    assert sorted(item["Key"].removeprefix(CHAMPION.prefix) for item in listed) == [
        "manifest.json",
        "model.tar.gz",
    ]
    body = client("s3").get_object(Bucket=BUCKET, Key=run.job.source_key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        names = set(archive.getnames())
    assert {
        ENTRY_POINT,
        "requirements.txt",
        "corpus-requirements.txt",
        "converter-requirements.txt",
    } <= names


def test_the_completed_jobs_challenger_is_registered_pending_approval_once(
    tmp_path: Path, commands_aws: None
) -> None:
    run = run_retrain_job(tmp_path)

    sagemaker = client("sagemaker")
    package = find_package(sagemaker, CHALLENGER_GROUP, CHALLENGER_VERSION)
    assert package is not None and run.registration.registered
    assert package["ModelPackageArn"] == run.registration.model_package_arn
    assert package["ModelApprovalStatus"] == PENDING
    assert package["CustomerMetadataProperties"][VERSION_KEY] == CHALLENGER_VERSION
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == (
        f"s3://{BUCKET}/models/headline-base/challengers/dev/{JOB_NAME}/output/model.tar.gz"
    )
    # Served as the champion is: the serving image of the account, the challenger's version.
    assert container["Image"].startswith(f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/")
    assert container["Environment"]["PRESSROOM_MODEL_VERSION"] == CHALLENGER_VERSION
    again = retrain_job.register_challenger(
        sagemaker, client("s3"), run.described, region=REGION, account_id=ACCOUNT_ID
    )
    assert again[1].registered is False


def test_a_challenger_the_offline_gate_failed_is_registered_rejected_with_the_reasons(
    tmp_path: Path, commands_aws: None
) -> None:
    reasons = ["distinct answers 0.31 (champion 0.97; must be at least 0.92)"]

    run_retrain_job(tmp_path, gate={"passed": False, "reasons": reasons})

    package = find_package(client("sagemaker"), CHALLENGER_GROUP, CHALLENGER_VERSION)
    assert package is not None
    assert package["ModelApprovalStatus"] == REJECTED
    assert package["ModelPackageDescription"].endswith(
        "rejected by the offline gate: " + reasons[0]
    )


def test_prod_retrains_only_an_approved_champion(tmp_path: Path, commands_aws: None) -> None:
    publish_champion(tmp_path)

    with pytest.raises(RetrainJobError, match="no package of headline-base that prod may serve"):
        served_champion(client("sagemaker"), client("s3"), "prod")


def test_a_champion_published_without_its_manifest_says_how_to_add_it(
    tmp_path: Path, commands_aws: None
) -> None:
    publish_champion(tmp_path)
    client("s3").delete_object(Bucket=BUCKET, Key=manifest_key("headline-base", CHAMPION_VERSION))

    with pytest.raises(RetrainJobError, match=r"manifest.json is missing.*`pressroom publish`"):
        served_champion(client("sagemaker"), client("s3"), "dev")


def _described(status: str, secondary: str, **extra: Any) -> dict[str, Any]:
    return {
        "TrainingJobName": JOB_NAME,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:training-job/{JOB_NAME}",
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 7200},
        "CreationTime": "2026-12-07T04:17:00Z",
        "ModelArtifacts": {"S3ModelArtifacts": "s3://b/model.tar.gz"},
        **extra,
    }


def test_waiting_describes_the_job_until_it_completes() -> None:
    sagemaker = client("sagemaker")
    seen: list[str] = []
    slept: list[float] = []
    with Stubber(sagemaker) as stubber:
        for status, secondary in [
            ("InProgress", "Starting"),
            ("InProgress", "Training"),
            ("InProgress", "Uploading"),
            ("Completed", "Completed"),
        ]:
            stubber.add_response(
                "describe_training_job",
                _described(status, secondary),
                {"TrainingJobName": JOB_NAME},
            )

        described = wait_for_job(
            sagemaker,
            JOB_NAME,
            on_status=lambda job: seen.append(job["SecondaryStatus"]),
            poll_seconds=30,
            sleep=slept.append,
        )

    assert described["TrainingJobStatus"] == "Completed"
    assert seen == ["Starting", "Training", "Uploading", "Completed"]
    assert slept == [30, 30, 30]


def test_a_refused_job_reports_the_refusal_sagemaker_recorded() -> None:
    sagemaker = client("sagemaker")
    reason = "Not retrained: too few votes: 12 in the store, retraining needs at least 100"
    with Stubber(sagemaker) as stubber:
        stubber.add_response(
            "describe_training_job",
            _described("Failed", "Failed", FailureReason=reason),
            {"TrainingJobName": JOB_NAME},
        )

        with pytest.raises(RetrainJobError, match=f"training job {JOB_NAME} failed: {reason}"):
            wait_for_job(sagemaker, JOB_NAME, on_status=lambda _: None, sleep=lambda _: None)


# What the child runs: import the entry point's modules from the source dir alone (no
# site-packages but the third-party ones), then list any first-party module found elsewhere.
_IMPORT_PROBE = """
import importlib, sys
source, site_packages = sys.argv[1:3]
sys.path[:0] = [source]
sys.path.append(site_packages)
for module in sys.argv[3:]:
    importlib.import_module(module)
first_party = ("training", "models", "pressroom_common")
print([name for name, module in sys.modules.items()
       if name.split(".")[0] in first_party
       and not (getattr(module, "__file__", None) or source).startswith(source)])
"""


def test_the_source_dir_holds_what_the_entry_point_imports(tmp_path: Path) -> None:
    source = tmp_path / "code"
    write_source_dir(tmp_path / "sourcedir.tar.gz")
    with tarfile.open(tmp_path / "sourcedir.tar.gz") as archive:
        archive.extractall(source, filter="data")
    entry_module = ENTRY_POINT.removesuffix(".py").replace("/", ".")

    # -I -S: no PYTHONPATH, no .pth files (the editable install's finder would reach the repo).
    completed = subprocess.run(
        [
            sys.executable, "-I", "-S", "-c", _IMPORT_PROBE, str(source),
            sysconfig.get_paths()["purelib"], entry_module,
            "training.feedback.retrain", "training.feedback.votes",
            "pressroom_common.feedback.store.engines", "sqlalchemy_aurora_data_api",
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip() == "[]"
    assert (source / "models" / "headline-base.yaml").is_file()


def test_the_source_dirs_pins_are_the_projects() -> None:
    pinned = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    offline = (REPO_ROOT / "requirements" / "offline.txt").read_text().splitlines()

    requirements = retrain_job.requirements_text().splitlines()
    corpus = retrain_job.corpus_requirements_text().splitlines()

    assert sorted(line for line in requirements if not line.startswith("#")) == sorted(
        line for line in pinned if line.split("==")[0] in retrain_job.JOB_PACKAGES
    )
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", line) for line in corpus)
    assert set(corpus) <= set(offline)
    # Nothing the DLC already holds is reinstalled (its own packages are built against them).
    assert not any(line.startswith(("torch==", "numpy==")) for line in requirements)


def test_a_package_missing_from_the_pins_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retrain_job, "JOB_PACKAGES", ("transformers", "not-a-dependency"))

    with pytest.raises(RetrainJobError, match=r"pyproject.toml pins no not-a-dependency"):
        retrain_job.requirements_text()


# --------------------------------------------------------------------------- the command


def test_the_command_starts_waits_and_registers(
    tmp_path: Path, commands_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_champion(tmp_path)
    monkeypatch.setattr(retrain_job, "new_job_name", lambda environment: JOB_NAME)
    monkeypatch.setattr(retrain_job, "feedback_database_url", lambda *_: DATABASE_URL)
    # moto reports a job complete as soon as it is created; its output is played when described.
    real_wait = retrain_job.wait_for_job

    def wait_after_playing(sagemaker: Any, name: str, **kwargs: Any) -> dict[str, Any]:
        play_the_job(client("sagemaker").describe_training_job(TrainingJobName=name))
        return real_wait(sagemaker, name, **kwargs)

    monkeypatch.setattr(retrain_job, "wait_for_job", wait_after_playing)

    result = CliRunner().invoke(app, ["retrain-job", "--env", "dev", "--wait"])

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == JOB_NAME
    stderr = " ".join(result.stderr.split())
    assert f"started {JOB_NAME}: headline-base {CHAMPION_VERSION}" in stderr
    assert f"{JOB_NAME}: Completed / Completed" in stderr
    assert f"headline-base {CHALLENGER_VERSION}: registered in {CHALLENGER_GROUP}" in stderr


def test_the_command_names_an_unknown_environment(commands_aws: None) -> None:
    result = CliRunner().invoke(app, ["retrain-job", "--env", "staging"])

    assert result.exit_code == 1
    assert "no environment 'staging'; known: dev, prod" in " ".join(result.stderr.split())
