"""Publishing and promoting models against moto's S3 and SageMaker Model Registry.

This is the AWS boundary: the artifact is a tiny fake that follows TRAINING's layout
(build/models/<profile>/<name>/model.tar.gz + manifest.json), so no training is needed.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from local.cfn import load_template
from local.ops.deploy import ModelParameters
from local.ops.publish import (
    VERSION_KEY,
    PackagedModel,
    PublishError,
    find_package,
    manifest_key,
    newest_servable_package,
    promote,
    publish,
    release_parameters,
)
from local.ops.publish_cli import commands
from local.paths import ROOT_TEMPLATE
from local.registry import APPROVED, PENDING
from tests.unit.publish.conftest import REGION, StubbedCloudFormation
from training.definitions import MODEL_NAMES

BUCKET = "pressroom-artifacts-test"
GROUP = "pressroom-headline-lite"
CONTAINER = {
    "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:test",
    "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
}


def make_packaged_model(root: Path, name: str, version: str, profile: str = "smoke") -> Path:
    """Write build/models/<profile>/<name>/ with a real (tiny) model.tar.gz and a manifest."""
    directory = root / profile / name
    directory.mkdir(parents=True)
    config = json.dumps({"model_type": "gpt2", "version": version}).encode()
    with tarfile.open(directory / "model.tar.gz", "w:gz") as tar:
        member = tarfile.TarInfo("config.json")
        member.size = len(config)
        tar.addfile(member, io.BytesIO(config))
    manifest = {"name": name, "version": version, "profile": profile, "metrics": {}}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield s3, boto3.client("sagemaker", region_name=REGION)


def publish_version(tmp_path: Path, aws: tuple[Any, Any], version: str, **kwargs: Any) -> Any:
    s3, sagemaker = aws
    directory = tmp_path / version
    model = PackagedModel.load(make_packaged_model(directory, "headline-lite", version))
    return publish(
        model, bucket=BUCKET, group=GROUP, container=CONTAINER, s3=s3, sagemaker=sagemaker, **kwargs
    )


def test_publish_uploads_under_the_version_and_registers_a_pending_package(
    tmp_path: Path, aws: tuple[Any, Any]
) -> None:
    s3, sagemaker = aws
    progress: list[int] = []

    publication = publish_version(tmp_path, aws, "abc123", on_bytes=progress.append)

    key = "models/headline-lite/abc123/model.tar.gz"
    assert publication.model_data_url == f"s3://{BUCKET}/{key}"
    assert (publication.uploaded, publication.registered) == (True, True)
    tarball = tmp_path / "abc123" / "smoke" / "headline-lite" / "model.tar.gz"
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == tarball.read_bytes()
    assert sum(progress) == tarball.stat().st_size
    manifest = s3.get_object(Bucket=BUCKET, Key=manifest_key("headline-lite", "abc123"))
    assert manifest["Body"].read() == (tarball.parent / "manifest.json").read_bytes()
    package = sagemaker.describe_model_package(ModelPackageName=publication.model_package_arn)
    assert package["ModelApprovalStatus"] == PENDING
    assert package["CustomerMetadataProperties"][VERSION_KEY] == "abc123"
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == publication.model_data_url
    assert container["Image"] == CONTAINER["Image"]


def test_republishing_the_same_version_changes_nothing(
    tmp_path: Path, aws: tuple[Any, Any]
) -> None:
    s3, sagemaker = aws
    first = publish_version(tmp_path, aws, "abc123")
    uploaded_at = s3.head_object(Bucket=BUCKET, Key="models/headline-lite/abc123/model.tar.gz")

    again = publish_version(tmp_path / "again", aws, "abc123")

    assert (again.uploaded, again.registered) == (False, False)
    assert again.model_package_arn == first.model_package_arn
    packages = sagemaker.list_model_packages(ModelPackageGroupName=GROUP)
    assert len(packages["ModelPackageSummaryList"]) == 1
    still = s3.head_object(Bucket=BUCKET, Key="models/headline-lite/abc123/model.tar.gz")
    assert still["LastModified"] == uploaded_at["LastModified"]


def test_republishing_a_version_without_its_manifest_uploads_only_the_manifest(
    tmp_path: Path, aws: tuple[Any, Any]
) -> None:
    s3, _ = aws
    publish_version(tmp_path, aws, "abc123")
    s3.delete_object(Bucket=BUCKET, Key=manifest_key("headline-lite", "abc123"))

    again = publish_version(tmp_path / "again", aws, "abc123")

    assert (again.uploaded, again.registered) == (False, False)
    s3.head_object(Bucket=BUCKET, Key=manifest_key("headline-lite", "abc123"))


def test_a_new_version_gets_its_own_package_and_both_are_found_by_version(
    tmp_path: Path, aws: tuple[Any, Any]
) -> None:
    _, sagemaker = aws
    old = publish_version(tmp_path, aws, "v-old")
    new = publish_version(tmp_path, aws, "v-new")

    assert old.model_package_arn != new.model_package_arn
    assert find_package(sagemaker, GROUP, "v-old")["ModelPackageArn"] == old.model_package_arn  # type: ignore[index]
    assert find_package(sagemaker, GROUP, "v-new")["ModelPackageArn"] == new.model_package_arn  # type: ignore[index]
    assert find_package(sagemaker, GROUP, "v-unknown") is None


def test_promote_approves_the_package_and_keeps_its_version(
    tmp_path: Path, aws: tuple[Any, Any]
) -> None:
    _, sagemaker = aws
    published = publish_version(tmp_path, aws, "abc123")

    approved = promote(sagemaker, group=GROUP, version="abc123")
    approved_again = promote(sagemaker, group=GROUP, version="abc123")

    assert approved["ModelPackageArn"] == published.model_package_arn
    assert approved["ModelApprovalStatus"] == APPROVED
    assert approved["CustomerMetadataProperties"][VERSION_KEY] == "abc123"
    assert approved_again["ModelApprovalStatus"] == APPROVED


def test_promoting_an_unpublished_version_names_the_version_and_the_group(
    aws: tuple[Any, Any],
) -> None:
    _, sagemaker = aws
    with pytest.raises(
        PublishError, match=f"nope is not registered in model package group {GROUP}"
    ):
        promote(sagemaker, group=GROUP, version="nope")


def test_dev_serves_the_newest_package_and_prod_only_the_newest_approved(
    tmp_path: Path, aws: tuple[Any, Any]
) -> None:
    _, sagemaker = aws
    publish_version(tmp_path, aws, "v1")
    promote(sagemaker, group=GROUP, version="v1")
    publish_version(tmp_path, aws, "v2")
    rejected = publish_version(tmp_path, aws, "v3")
    sagemaker.update_model_package(
        ModelPackageArn=rejected.model_package_arn,
        ModelApprovalStatus="Rejected",
        CustomerMetadataProperties={VERSION_KEY: "v3"},
    )

    dev = newest_servable_package(sagemaker, GROUP, approved_only=False)
    prod = newest_servable_package(sagemaker, GROUP, approved_only=True)

    assert dev is not None and dev["CustomerMetadataProperties"][VERSION_KEY] == "v2"
    assert prod is not None and prod["CustomerMetadataProperties"][VERSION_KEY] == "v1"
    assert newest_servable_package(sagemaker, "pressroom-missing", approved_only=False) is None


def test_release_parameters_add_each_models_url_and_version_to_the_stage_overrides(
    tmp_path: Path, aws: tuple[Any, Any]
) -> None:
    _, sagemaker = aws
    publication = publish_version(tmp_path, aws, "abc123")
    package = find_package(sagemaker, GROUP, "abc123")
    assert package is not None

    text = release_parameters(
        "Stage=dev HostingMode=serverless 'DomainName='",
        {"headline-lite": ModelParameters("HeadlineLiteModelDataUrl", "HeadlineLiteModelVersion")},
        {"headline-lite": package},
    )

    assert text.split() == [
        "Stage=dev",
        "HostingMode=serverless",
        "DomainName=''",
        f"HeadlineLiteModelDataUrl={publication.model_data_url}",
        "HeadlineLiteModelVersion=abc123",
    ]


def test_release_parameters_refuse_a_model_with_nothing_to_serve() -> None:
    with pytest.raises(PublishError, match="no servable package of news-classifier"):
        release_parameters(
            "Stage=prod",
            {
                "news-classifier": ModelParameters(
                    "ClassifierModelDataUrl", "ClassifierModelVersion"
                )
            },
            {"news-classifier": None},
        )


def test_a_missing_artifact_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(PublishError, match=r"model.tar.gz is missing.*build-all --profile full"):
        PackagedModel.load(tmp_path / "full" / "headline-base")


def test_a_manifest_without_a_version_names_the_field(tmp_path: Path) -> None:
    directory = make_packaged_model(tmp_path, "headline-base", "v1")
    (directory / "manifest.json").write_text(json.dumps({"name": "headline-base", "profile": "x"}))

    with pytest.raises(PublishError, match="field 'version' must be a non-empty string"):
        PackagedModel.load(directory)


def test_a_manifest_for_another_model_is_refused(tmp_path: Path) -> None:
    directory = make_packaged_model(tmp_path, "headline-base", "v1")
    (directory / "manifest.json").write_text(
        json.dumps({"name": "news-classifier", "version": "v1", "profile": "smoke"})
    )

    with pytest.raises(PublishError, match="field 'name' is 'news-classifier'"):
        PackagedModel.load(directory)


# --------------------------------------------------------------------------- the commands


@pytest.fixture
def cli_aws(commands_aws: None) -> Any:
    """The commands' moto, with the artifact bucket; its SageMaker client."""
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    return boto3.client("sagemaker", region_name=REGION)


def run(*arguments: str) -> Any:
    return CliRunner().invoke(commands, list(arguments))


def test_publish_command_prints_the_template_parameters_and_registers_the_template_image(
    tmp_path: Path, cli_aws: Any
) -> None:
    make_packaged_model(tmp_path, "headline-base", "v1")

    result = run(
        "publish", "headline-base", "--profile", "smoke", "--bucket", BUCKET,
        "--models-root", str(tmp_path),
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    url = f"s3://{BUCKET}/models/headline-base/v1/model.tar.gz"
    assert result.stdout.split() == [
        f"HeadlineBaseModelDataUrl={url}",
        "HeadlineBaseModelVersion=v1",
    ]
    package = find_package(cli_aws, "pressroom-headline-base", "v1")
    assert package is not None
    container = package["InferenceSpecification"]["Containers"][0]
    # The serving image in the publishing account's ECR (moto's account), as the root names it.
    root_parameters = load_template(ROOT_TEMPLATE)["Parameters"]
    assert container["Image"] == (
        f"123456789012.dkr.ecr.{REGION}.amazonaws.com/"
        f"{root_parameters['InferenceImageRepository']['Default']}:"
        f"{root_parameters['InferenceImageTag']['Default']}"
    )
    assert container["Environment"]["PRESSROOM_MODEL_VERSION"] == "v1"

    again = run(
        "publish", "headline-base", "--profile", "smoke", "--bucket", BUCKET,
        "--models-root", str(tmp_path),
    )  # fmt: skip

    assert again.exit_code == 0, again.output
    assert "already in S3, already registered" in again.stderr


def test_prod_release_parameters_need_every_model_approved(
    tmp_path: Path, cli_aws: Any, cloudformation: StubbedCloudFormation
) -> None:
    cloudformation.no_stack()
    cloudformation.no_stack()
    for name in MODEL_NAMES:
        make_packaged_model(tmp_path, name, f"{name}-v1")
    published = run(
        "publish", "--profile", "smoke", "--bucket", BUCKET, "--models-root", str(tmp_path)
    )
    assert published.exit_code == 0, published.output

    refused = run("release-parameters", "--env", "prod")
    for name in MODEL_NAMES:
        assert run("promote", name, f"{name}-v1").exit_code == 0
    released = run("release-parameters", "--env", "prod")

    assert refused.exit_code == 1
    assert "no servable package of" in refused.stderr
    assert released.exit_code == 0, released.output
    parameters = dict(token.split("=", 1) for token in released.stdout.split())
    assert parameters["Stage"] == "prod"
    assert parameters["NewsClassifierModelVersion"] == "news-classifier-v1"
    assert parameters["HeadlineLiteModelDataUrl"] == (
        f"s3://{BUCKET}/models/headline-lite/headline-lite-v1/model.tar.gz"
    )


def test_publish_without_a_bucket_says_which_option_is_missing(
    tmp_path: Path, cli_aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PRESSROOM_ARTIFACT_BUCKET", raising=False)
    make_packaged_model(tmp_path, "headline-base", "v1")

    result = run("publish", "headline-base", "--models-root", str(tmp_path), "--profile", "smoke")

    assert result.exit_code == 1
    assert "--bucket (or PRESSROOM_ARTIFACT_BUCKET) is required" in result.stderr


def test_publish_with_approve_registers_an_approved_package(tmp_path: Path, cli_aws: Any) -> None:
    make_packaged_model(tmp_path, "news-classifier", "v7")

    result = run(
        "publish", "news-classifier", "--approve", "--profile", "smoke", "--bucket", BUCKET,
        "--models-root", str(tmp_path),
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    package = find_package(cli_aws, "pressroom-news-classifier", "v7")
    assert package is not None and package["ModelApprovalStatus"] == APPROVED
