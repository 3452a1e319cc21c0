"""Publish packaged models to S3 and the SageMaker Model Registry, and promote them.

A packaged model is `build/models/<profile>/<name>/` holding `model.tar.gz` and `manifest.json`
(TRAINING's layout). Its `version` is a content hash, so the S3 key
`models/<name>/<version>/model.tar.gz` never changes meaning and publishing the same build twice
changes nothing. Each model has a model package group; a package records our version in its
customer metadata, because SageMaker numbers package versions on its own.

Deploys take the newest package a stage may serve (`release_parameters`): any registered one for
dev, an approved one for prod, so `pressroom promote` is the gate to production. A challenger
(a headline-base version retrained on votes, in `CHALLENGER_GROUP`) is served only when named:
`release-parameters --challenger VERSION --share S` starts an experiment round with it on
variant B, under the same approval rule.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import boto3
import typer
from botocore.exceptions import ClientError
from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

from local.ops.deploy import (
    DeployError,
    ModelParameters,
    clean_failure,
    console,
    environment_config,
    model_parameters,
    parse_overrides,
    serving_container,
)
from local.paths import DEFAULT_MODELS_ROOT
from local.registry import APPROVED, PENDING, REJECTED, ApprovalStatus
from local.rounds.state import (
    DEFAULT_SHARE,
    MAX_SHARE,
    ROUND_PARAMETERS,
    round_overrides,
    share_problem,
)

VERSION_KEY = "pressroom:version"
MAX_DESCRIPTION = 1024  # CreateModelPackage's ModelPackageDescription
PROFILE_KEY = "pressroom:profile"
# Where retraining jobs register challengers (PendingManualApproval), apart from the champions'.
CHALLENGER_GROUP = "pressroom-headline-challengers"
# S3 object metadata and SageMaker API responses are untyped JSON; this names them.
Json = dict[str, Any]


class PublishError(DeployError):
    """A publish or promote step that cannot go on; the message says what to do."""


@dataclass(frozen=True)
class PackagedModel:
    """One model as TRAINING packaged it: what gets uploaded and under which version."""

    name: str
    version: str
    profile: str
    tarball: Path
    manifest: Path

    @classmethod
    def load(cls, directory: Path) -> PackagedModel:
        manifest_path = directory / "manifest.json"
        tarball = directory / "model.tar.gz"
        for required in (tarball, manifest_path):
            if not required.is_file():
                raise PublishError(
                    f"{required} is missing: build the model first "
                    f"(`pressroom build-all --profile {directory.parent.name}`)"
                )
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as error:
            raise PublishError(f"{manifest_path} is not valid JSON: {error}") from error
        fields = {}
        for field in ("name", "version", "profile"):
            value = manifest.get(field) if isinstance(manifest, dict) else None
            if not isinstance(value, str) or not value:
                raise PublishError(f"{manifest_path}: field '{field}' must be a non-empty string")
            fields[field] = value
        if fields["name"] != directory.name:
            raise PublishError(
                f"{manifest_path}: field 'name' is {fields['name']!r} "
                f"but the directory is {directory.name!r}"
            )
        return cls(tarball=tarball, manifest=manifest_path, **fields)


@dataclass(frozen=True)
class Publication:
    """Where a model version lives and whether this call changed anything."""

    name: str
    version: str
    model_data_url: str
    model_package_arn: str
    uploaded: bool
    registered: bool


def artifact_key(name: str, version: str) -> str:
    return f"models/{name}/{version}/model.tar.gz"


def manifest_key(name: str, version: str) -> str:
    """The manifest beside the tarball (it is not inside it): a retraining job reads the
    champion's from there (`pressroom retrain-job`)."""
    return f"models/{name}/{version}/manifest.json"


def default_group_name(name: str) -> str:
    return f"pressroom-{name}"


def publish(
    model: PackagedModel,
    *,
    bucket: str,
    group: str,
    container: Mapping[str, Any],
    s3: Any,
    sagemaker: Any,
    approval_status: ApprovalStatus = PENDING,
    on_bytes: Callable[[int], None] | None = None,
) -> Publication:
    """Upload the tarball and its manifest and register the tarball as a model package,
    skipping what already exists.

    `container` is the serving container spec (Image, Environment) without ModelDataUrl;
    `on_bytes` receives upload progress.
    """
    key = artifact_key(model.name, model.version)
    model_data_url = f"s3://{bucket}/{key}"
    metadata = {"pressroom-model": model.name, VERSION_KEY: model.version}
    uploaded = not object_exists(s3, bucket, key)
    if uploaded:
        s3.upload_file(
            str(model.tarball),
            bucket,
            key,
            ExtraArgs={"Metadata": metadata},
            Callback=on_bytes,
        )
    # Checked apart from the tarball: versions published before manifests were uploaded get one.
    manifest = manifest_key(model.name, model.version)
    if not object_exists(s3, bucket, manifest):
        s3.upload_file(
            str(model.manifest),
            bucket,
            manifest,
            ExtraArgs={"Metadata": metadata, "ContentType": "application/json"},
        )
    registration = register(
        sagemaker,
        group=group,
        name=model.name,
        version=model.version,
        profile=model.profile,
        model_data_url=model_data_url,
        container=container,
        approval_status=approval_status,
    )
    return Publication(
        model.name,
        model.version,
        model_data_url,
        registration.model_package_arn,
        uploaded,
        registration.registered,
    )


@dataclass(frozen=True)
class Registration:
    model_package_arn: str
    registered: bool  # False when the group already held that version


def register(
    sagemaker: Any,
    *,
    group: str,
    name: str,
    version: str,
    profile: str,
    model_data_url: str,
    container: Mapping[str, Any],
    approval_status: ApprovalStatus = PENDING,
    rejected_because: str = "",
) -> Registration:
    """Register `version` of model `name` (its artifact at `model_data_url`) in `group` as a
    model package carrying the version in its customer metadata, unless the group has it. A
    package registered Rejected says why in its description (CreateModelPackage takes no
    ApprovalDescription)."""
    _ensure_group(sagemaker, group, name)
    existing = find_package(sagemaker, group, version)
    if existing is not None:
        return Registration(existing["ModelPackageArn"], registered=False)
    arn: str = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription=(
            f"{name} {version} ({profile} profile)"
            + (f"; rejected by {rejected_because}" if approval_status == REJECTED else "")
        )[:MAX_DESCRIPTION],
        InferenceSpecification={
            "Containers": [{**container, "ModelDataUrl": model_data_url}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelApprovalStatus=approval_status,
        CustomerMetadataProperties={VERSION_KEY: version, PROFILE_KEY: profile},
    )["ModelPackageArn"]
    return Registration(arn, registered=True)


def promote(sagemaker: Any, *, group: str, version: str) -> Json:
    """Approve the package of `version` in `group`; returns the package as it now stands."""
    package = find_package(sagemaker, group, version)
    if package is None:
        raise PublishError(
            f"version {version} is not registered in model package group {group}: "
            "run `pressroom publish` first"
        )
    if package.get("ModelApprovalStatus") != APPROVED:
        sagemaker.update_model_package(
            ModelPackageArn=package["ModelPackageArn"],
            ModelApprovalStatus=APPROVED,
            # Re-sent unchanged: an update that omits it must not lose the version tag.
            CustomerMetadataProperties=package["CustomerMetadataProperties"],
        )
    approved: Json = sagemaker.describe_model_package(ModelPackageName=package["ModelPackageArn"])
    return approved


def find_package(sagemaker: Any, group: str, version: str) -> Json | None:
    """The package in `group` whose customer metadata carries `version`, if any."""
    for package in _packages_newest_first(sagemaker, group):
        if package.get("CustomerMetadataProperties", {}).get(VERSION_KEY) == version:
            return package
    return None


def newest_servable_package(sagemaker: Any, group: str, *, approved_only: bool) -> Json | None:
    """The newest package a stage may serve: approved ones only, or any not rejected."""
    for package in _packages_newest_first(sagemaker, group):
        status = package.get("ModelApprovalStatus")
        if status == APPROVED or (not approved_only and status != REJECTED):
            return package
    return None


def release_parameters(
    base_overrides: str,
    model_parameters: Mapping[str, ModelParameters],
    packages: Mapping[str, Json | None],
    experiment_round: Mapping[str, str] | None = None,
) -> str:
    """`sam deploy --parameter-overrides` text: the environment's own overrides plus each
    model's artifact URL and version from its package, then an experiment round's parameters
    (`challenger_round`), if any."""
    overrides = parse_overrides(base_overrides)
    overrides.update(experiment_round or {})
    for name, parameters in model_parameters.items():
        package = packages.get(name)
        if package is None:
            raise PublishError(f"no servable package of {name}: publish (and promote) it first")
        container = package["InferenceSpecification"]["Containers"][0]
        overrides[parameters.data_url] = container["ModelDataUrl"]
        overrides[parameters.version] = package["CustomerMetadataProperties"][VERSION_KEY]
    return " ".join(f"{key}={shlex.quote(value)}" for key, value in overrides.items())


def challenger_round(
    sagemaker: Any,
    cloudformation: Any,
    *,
    stack_name: str,
    version: str,
    share: float,
    approved_only: bool,
    now: datetime,
) -> dict[str, str]:
    """The root parameters of an experiment round with challenger `version` from
    `CHALLENGER_GROUP` on variant B at `share`. A stack already serving that challenger keeps
    its round's start, so a redeploy does not restart the round; otherwise it starts `now`."""
    if (problem := share_problem(share)) is not None:
        raise PublishError(problem)
    package = find_package(sagemaker, CHALLENGER_GROUP, version)
    if package is None:
        raise PublishError(
            f"--challenger {version}: no such version in model package group {CHALLENGER_GROUP} "
            "(a retraining job registers challengers there)"
        )
    status = package.get("ModelApprovalStatus")
    if status == REJECTED or (approved_only and status != APPROVED):
        raise PublishError(
            f"--challenger {version} is {status} in {CHALLENGER_GROUP}, and this environment "
            f"serves {'Approved' if approved_only else 'any but Rejected'} packages only"
            + (
                f" (`pressroom promote headline-base {version} --model-package-group "
                f"{CHALLENGER_GROUP}` approves it)"
                if status != REJECTED
                else ""
            )
        )
    deployed = _deployed_parameters(cloudformation, stack_name)
    same_round = deployed.get("ChallengerModelVersion") == version
    started_at = deployed.get("ExperimentStartedAt") if same_round else None
    return round_overrides(
        data_url=package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"],
        version=version,
        share=share,
        started_at=started_at or now.astimezone(UTC).isoformat(timespec="seconds"),
    )


def deployed_round(cloudformation: Any, stack_name: str) -> dict[str, str] | None:
    """The round the stack serves now (its round parameters as deployed), or None: a deploy
    that names no challenger keeps it, so an ordinary push does not end a running round."""
    deployed = _deployed_parameters(cloudformation, stack_name)
    if not deployed.get("ChallengerModelVersion"):
        return None
    return {key: deployed[key] for key in ROUND_PARAMETERS}


def _deployed_parameters(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """The root stack's parameter values as deployed; empty before the first deploy."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            return {}
        raise
    return {
        item["ParameterKey"]: item.get("ParameterValue", "")
        for item in stacks[0].get("Parameters", [])
    }


def _packages_newest_first(sagemaker: Any, group: str) -> Iterator[Json]:
    pages = sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending"
    )
    try:
        for page in pages:
            for summary in page["ModelPackageSummaryList"]:
                package: Json = sagemaker.describe_model_package(
                    ModelPackageName=summary["ModelPackageArn"]
                )
                yield package
    except ClientError as error:
        if _is_missing_group(error):
            return
        raise


def _ensure_group(sagemaker: Any, group: str, model_name: str) -> None:
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
    except ClientError as error:
        if not _is_missing_group(error):
            raise
        sagemaker.create_model_package_group(
            ModelPackageGroupName=group,
            ModelPackageGroupDescription=f"Pressroom {model_name}: one package per trained version",
        )


def _is_missing_group(error: ClientError) -> bool:
    # SageMaker answers a missing group with a ValidationException, not a ResourceNotFound.
    message = str(error.response.get("Error", {}).get("Message", ""))
    return "does not exist" in message or "not found" in message.lower()


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise
    return True


# --------------------------------------------------------------------------- commands

commands = typer.Typer()
# Environments that serve approved packages only; any other serves the newest registered one.
APPROVED_ONLY_ENVIRONMENTS = frozenset({"prod"})


@commands.command("publish")
def publish_command(
    models: Annotated[
        list[str] | None,
        typer.Argument(help="Models to publish (default: every packaged model of the profile)."),
    ] = None,
    profile: Annotated[str, typer.Option(help="Build profile to publish from.")] = "full",
    bucket: Annotated[
        str,
        typer.Option(envvar="PRESSROOM_ARTIFACT_BUCKET", help="Artifact bucket (infra stack)."),
    ] = "",
    model_package_group: Annotated[
        str | None, typer.Option(help="Model package group (default: pressroom-<model>).")
    ] = None,
    models_root: Annotated[Path, typer.Option(help="Where packaged models live.")] = (
        DEFAULT_MODELS_ROOT
    ),
    approve: Annotated[
        bool,
        typer.Option(
            "--approve",
            help="Register new packages as Approved instead of PendingManualApproval "
            "(a person's shortcut for `pressroom promote`; the CI role may not use it).",
        ),
    ] = False,
) -> None:
    """Upload packaged models to S3 and register them in the SageMaker Model Registry."""
    with clean_failure():
        if not bucket:
            raise PublishError("--bucket (or PRESSROOM_ARTIFACT_BUCKET) is required")
        names = models or sorted(path.name for path in (models_root / profile).glob("*/"))
        if not names:
            raise PublishError(f"no packaged models under {models_root / profile}")
        if model_package_group and len(names) > 1:
            raise PublishError("--model-package-group needs exactly one model")
        session = boto3.session.Session()
        region = _region(session)
        s3, sagemaker = session.client("s3"), session.client("sagemaker")
        # The serving image a package declares is in this account's ECR repository.
        account_id = str(session.client("sts").get_caller_identity()["Account"])
        parameters = model_parameters()
        for name in names:
            model = PackagedModel.load(models_root / profile / name)
            with _upload_progress(model) as on_bytes:
                publication = publish(
                    model,
                    bucket=bucket,
                    group=model_package_group or default_group_name(name),
                    container=_container(model, bucket, region, account_id),
                    s3=s3,
                    sagemaker=sagemaker,
                    approval_status=APPROVED if approve else PENDING,
                    on_bytes=on_bytes,
                )
            _report(publication, parameters.get(name))


@commands.command("promote")
def promote_command(
    model: Annotated[str, typer.Argument(help="Model name, e.g. headline-base.")],
    version: Annotated[str, typer.Argument(help="Version (the manifest's content hash).")],
    model_package_group: Annotated[
        str | None, typer.Option(help="Model package group (default: pressroom-<model>).")
    ] = None,
) -> None:
    """Approve a published model version, so that prod may serve it."""
    with clean_failure():
        sagemaker = boto3.session.Session().client("sagemaker")
        package = promote(
            sagemaker, group=model_package_group or default_group_name(model), version=version
        )
        console.print(f"[green]approved[/] {model} {version}: {package['ModelPackageArn']}")


@commands.command("release-parameters")
def release_parameters_command(
    env: Annotated[str, typer.Option(help="samconfig.toml environment (dev, prod).")],
    challenger: Annotated[
        str | None,
        typer.Option(
            help=f"Version of a headline-base challenger in {CHALLENGER_GROUP}: serve it on "
            "variant B in an experiment round (Thompson sampling from --share)."
        ),
    ] = None,
    share: Annotated[
        float, typer.Option(help=f"The challenger's first share of traffic, in (0, {MAX_SHARE}].")
    ] = DEFAULT_SHARE,
    end_round: Annotated[
        bool,
        typer.Option(
            "--end-round", help="End the stack's experiment round: variant B serves headline-lite."
        ),
    ] = False,
) -> None:
    """Print `sam deploy --parameter-overrides` for ENV: its own, plus the models it may serve
    and its experiment round: the `--challenger` given, else the one the stack serves now
    (unless `--end-round`)."""
    with clean_failure():
        config = environment_config(env)
        session = boto3.session.Session(region_name=config.region)
        sagemaker = session.client("sagemaker")
        parameters = model_parameters()
        approved_only = env in APPROVED_ONLY_ENVIRONMENTS
        packages = {
            name: newest_servable_package(
                sagemaker, default_group_name(name), approved_only=approved_only
            )
            for name in parameters
        }
        if challenger is not None and end_round:
            raise PublishError("--challenger starts a round and --end-round ends one: give one")
        cloudformation = session.client("cloudformation")
        experiment_round = None
        if challenger is None and not end_round:
            experiment_round = deployed_round(cloudformation, config.stack_name)
        elif challenger is not None:
            experiment_round = challenger_round(
                sagemaker,
                cloudformation,
                stack_name=config.stack_name,
                version=challenger,
                share=share,
                approved_only=approved_only,
                now=datetime.now(UTC),
            )
        typer.echo(
            release_parameters(config.parameter_overrides, parameters, packages, experiment_round)
        )


def _container(model: PackagedModel, bucket: str, region: str, account_id: str) -> dict[str, Any]:
    return serving_container(
        model.name,
        model_data_url=f"s3://{bucket}/{artifact_key(model.name, model.version)}",
        version=model.version,
        region=region,
        account_id=account_id,
    )


def _report(publication: Publication, parameters: ModelParameters | None) -> None:
    state = "uploaded" if publication.uploaded else "already in S3"
    registry = "registered" if publication.registered else "already registered"
    console.print(
        f"[green]{publication.name} {publication.version}[/]: {state}, {registry} "
        f"({publication.model_package_arn})"
    )
    # The artifact URI, in the form the templates take it (stdout, for scripts).
    if parameters is None:
        typer.echo(publication.model_data_url)
    else:
        typer.echo(
            f"{parameters.data_url}={publication.model_data_url} "
            f"{parameters.version}={publication.version}"
        )


@contextmanager
def _upload_progress(model: PackagedModel) -> Iterator[Callable[[int], None]]:
    columns = (*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(
            f"{model.name} {model.version}", total=model.tarball.stat().st_size
        )
        yield lambda sent: progress.advance(task, sent)


def _region(session: boto3.session.Session) -> str:
    region: str | None = session.region_name
    if not region:
        raise PublishError("no AWS region: set AWS_REGION (or a profile with a region)")
    return region
