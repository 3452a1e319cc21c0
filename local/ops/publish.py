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

The commands (`pressroom publish`, `promote`, `release-parameters`) are in `local.ops.publish_cli`.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from local.ops.deploy import DeployError, ModelParameters, parse_overrides
from local.registry import APPROVED, PENDING, REJECTED, ApprovalStatus
from local.rounds.state import ROUND_PARAMETERS, round_overrides, share_problem

VERSION_KEY = "pressroom:version"
MAX_DESCRIPTION = 1024  # CreateModelPackage's ModelPackageDescription
PROFILE_KEY = "pressroom:profile"
# Where retraining jobs register challengers (PendingManualApproval), apart from the champions'.
CHALLENGER_GROUP = "pressroom-headline-challengers"
# Environments that serve approved packages only; any other serves the newest registered one.
APPROVED_ONLY_ENVIRONMENTS = frozenset({"prod"})
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
