"""`release-parameters --challenger`: an experiment round on AWS, against moto's SageMaker Model
Registry and a stubbed CloudFormation (moto's needs packages this project does not pin). The
challenger comes from its own package group, under the same approval rule as the models; a
redeploy of the same challenger keeps the round's start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from local.ops.publish import (
    CHALLENGER_GROUP,
    VERSION_KEY,
    PackagedModel,
    PublishError,
    challenger_round,
    deployed_round,
    find_package,
    promote,
    publish,
)
from tests.unit.publish.conftest import STACK, STACK_CREATED, StubbedCloudFormation
from tests.unit.publish.test_model_publishing import (
    BUCKET,
    CONTAINER,
    REGION,
    make_packaged_model,
    run,
)

NOW = STACK_CREATED


@pytest.fixture
def sagemaker(commands_aws: None) -> Any:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    return boto3.client("sagemaker", region_name=REGION)


def register_challenger(tmp_path: Path, version: str) -> str:
    """Publish a tiny headline-base as `version` into CHALLENGER_GROUP (PendingManualApproval,
    as a retraining job registers it); returns its artifact URL."""
    model = PackagedModel.load(make_packaged_model(tmp_path / version, "headline-base", version))
    publication = publish(
        model,
        bucket=BUCKET,
        group=CHALLENGER_GROUP,
        container=CONTAINER,
        s3=boto3.client("s3", region_name=REGION),
        sagemaker=boto3.client("sagemaker", region_name=REGION),
    )
    return publication.model_data_url


def round_for(
    sagemaker: Any, cloudformation: StubbedCloudFormation, version: str, **options: Any
) -> dict[str, str]:
    settings = {"share": 0.1, "approved_only": False, **options}
    return challenger_round(
        sagemaker, cloudformation.client, stack_name=STACK, version=version, now=NOW, **settings
    )


def test_dev_serves_a_pending_challenger_on_b_at_the_canary_share(
    tmp_path: Path, sagemaker: Any, cloudformation: Any
) -> None:
    url = register_challenger(tmp_path, "c1")
    cloudformation.no_stack()  # the first deploy

    assert round_for(sagemaker, cloudformation, "c1", share=0.2) == {
        "ChallengerModelDataUrl": url,
        "ChallengerModelVersion": "c1",
        "VariantAWeight": "0.8",
        "VariantBWeight": "0.2",
        "RoutingStrategy": "thompson",
        "ExperimentStartedAt": "2026-06-01T08:00:00+00:00",
    }


def test_prod_serves_an_approved_challenger_only(
    tmp_path: Path, sagemaker: Any, cloudformation: Any
) -> None:
    register_challenger(tmp_path, "c1")

    with pytest.raises(PublishError, match=r"c1 is PendingManualApproval .* Approved packages"):
        round_for(sagemaker, cloudformation, "c1", approved_only=True)
    promote(sagemaker, group=CHALLENGER_GROUP, version="c1")
    cloudformation.no_stack()
    assert round_for(sagemaker, cloudformation, "c1", approved_only=True)["VariantBWeight"] == "0.1"


def test_a_rejected_or_unknown_challenger_and_a_bad_share_are_refused(
    tmp_path: Path, sagemaker: Any, cloudformation: Any
) -> None:
    register_challenger(tmp_path, "c1")
    package = find_package(sagemaker, CHALLENGER_GROUP, "c1")
    assert package is not None
    sagemaker.update_model_package(
        ModelPackageArn=package["ModelPackageArn"],
        ModelApprovalStatus="Rejected",
        CustomerMetadataProperties={VERSION_KEY: "c1"},
    )

    with pytest.raises(PublishError, match=f"--challenger c1 is Rejected in {CHALLENGER_GROUP}"):
        round_for(sagemaker, cloudformation, "c1")
    with pytest.raises(
        PublishError, match=f"--challenger c9: no such version in .*{CHALLENGER_GROUP}"
    ):
        round_for(sagemaker, cloudformation, "c9")
    with pytest.raises(PublishError, match=r"--share 0\.7: the challenger's share must be above 0"):
        round_for(sagemaker, cloudformation, "c1", share=0.7)


def test_redeploying_the_same_challenger_keeps_the_rounds_start(
    tmp_path: Path, sagemaker: Any, cloudformation: Any
) -> None:
    register_challenger(tmp_path, "c1")
    register_challenger(tmp_path, "c2")
    for _ in range(2):
        cloudformation.deployed(
            ChallengerModelVersion="c1", ExperimentStartedAt="2026-05-20T10:00:00+00:00"
        )

    same = round_for(sagemaker, cloudformation, "c1")
    another = round_for(sagemaker, cloudformation, "c2")

    assert same["ExperimentStartedAt"] == "2026-05-20T10:00:00+00:00"
    assert another["ExperimentStartedAt"] == "2026-06-01T08:00:00+00:00"


def test_the_command_adds_the_round_to_the_environments_parameters(
    tmp_path: Path,
    sagemaker: Any,
    cloudformation: StubbedCloudFormation,
) -> None:
    for name in ("headline-base", "headline-lite", "news-classifier"):
        make_packaged_model(tmp_path, name, f"{name}-v1")
    published = run(
        "publish", "--profile", "smoke", "--bucket", BUCKET, "--models-root", str(tmp_path)
    )
    assert published.exit_code == 0, published.output
    url = register_challenger(tmp_path / "challengers", "c1")
    cloudformation.no_stack()

    released = run("release-parameters", "--env", "dev", "--challenger", "c1", "--share", "0.25")

    assert released.exit_code == 0, released.output
    parameters = dict(token.split("=", 1) for token in released.stdout.split())
    assert parameters["Stage"] == "dev"
    assert parameters["HeadlineBaseModelVersion"] == "headline-base-v1"
    assert parameters["ChallengerModelDataUrl"] == url
    assert (parameters["VariantAWeight"], parameters["VariantBWeight"]) == ("0.75", "0.25")
    assert parameters["RoutingStrategy"] == "thompson"


def test_a_deploy_without_a_challenger_keeps_the_round_the_stack_serves(
    cloudformation: StubbedCloudFormation,
) -> None:
    running = {
        "ChallengerModelDataUrl": "s3://bucket/models/headline-base/c1/model.tar.gz",
        "ChallengerModelVersion": "c1",
        "VariantAWeight": "0.9",
        "VariantBWeight": "0.1",
        "RoutingStrategy": "thompson",
        "ExperimentStartedAt": "2026-05-20T10:00:00+00:00",
    }
    cloudformation.deployed(Stage="dev", **running)
    cloudformation.deployed(Stage="dev", ChallengerModelVersion="", VariantBWeight="1")
    cloudformation.no_stack()

    assert deployed_round(cloudformation.client, STACK) == running
    assert deployed_round(cloudformation.client, STACK) is None  # no round: nothing to keep
    assert deployed_round(cloudformation.client, STACK) is None  # the first deploy
