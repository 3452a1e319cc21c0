"""`pressroom round decide --env ENV`: the deployed round against the environment's real
`/api/stats` (served on 127.0.0.1 from a real feedback store), moto's SageMaker Model Registry
and a stubbed CloudFormation. A winner is approved and registered as an Approved headline-base,
which the next deploy's `release-parameters --end-round` serves on A; a loser is Rejected with
the reason; an undecided round waits and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from local.cli import app
from local.experiment.decide import EXIT_NO_ROUND, EXIT_WAITING
from local.ops.publish import (
    CHALLENGER_GROUP,
    default_group_name,
    find_package,
    newest_servable_package,
)
from tests.fixtures.stats_api import ROUND_START, StatsApi, stats_api
from tests.unit.publish.conftest import REGION, StubbedCloudFormation
from tests.unit.publish.test_challenger_release import register_challenger
from tests.unit.publish.test_model_publishing import BUCKET, make_packaged_model, run

BASE_GROUP = default_group_name("headline-base")


@pytest.fixture
def api() -> Iterator[StatsApi]:
    with stats_api() as running:
        yield running


@pytest.fixture
def registry(tmp_path: Path, sagemaker: Any) -> str:
    """The three models published (dev serves them), challenger c1 registered for review;
    returns c1's artifact URL."""
    for name in ("headline-base", "headline-lite", "news-classifier"):
        make_packaged_model(tmp_path, name, f"{name}-v1")
    published = run(
        "publish", "--profile", "smoke", "--bucket", BUCKET, "--models-root", str(tmp_path)
    )
    assert published.exit_code == 0, published.output
    return register_challenger(tmp_path / "challengers", "c1")


@pytest.fixture
def sagemaker(commands_aws: None) -> Any:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    return boto3.client("sagemaker", region_name=REGION)


def deployed(cloudformation: StubbedCloudFormation, api_url: str, **round_: str) -> None:
    """The stack as DescribeStacks answers it: the champion, a round, the API's URL."""
    cloudformation.deployed(
        {"ApiUrl": api_url},
        Stage="dev",
        HeadlineBaseModelVersion="headline-base-v1",
        **round_,
    )


def in_a_round(cloudformation: StubbedCloudFormation, api: StatsApi) -> None:
    deployed(
        cloudformation,
        api.url,
        ChallengerModelVersion="c1",
        ExperimentStartedAt=ROUND_START.isoformat(),
        VariantBWeight="0.1",
    )


def decide(*options: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["round", "decide", "--env", "dev", *options])
    return result.exit_code, " ".join(result.output.split())


def test_a_winner_is_approved_and_the_next_deploy_serves_it_on_a(
    sagemaker: Any, cloudformation: StubbedCloudFormation, api: StatsApi, registry: str
) -> None:
    api.serve("A", up=10, down=30)
    api.serve("B", up=32, down=8)
    in_a_round(cloudformation, api)

    code, output = decide()

    assert code == 0, output
    assert "promoted challenger c1 in dev" in output
    assert "END_ROUND=1" in output
    assert api.queries == [{"since": [ROUND_START.isoformat()]}]
    challenger = find_package(sagemaker, CHALLENGER_GROUP, "c1")
    assert challenger is not None and challenger["ModelApprovalStatus"] == "Approved"
    assert challenger["ApprovalDescription"].startswith(
        "round decided: readers prefer the challenger headline-base c1 (B)"
    )
    # dev serves it next; prod's champion stays until a person promotes it there.
    champion = newest_servable_package(sagemaker, BASE_GROUP, approved_only=False)
    assert champion is not None
    assert champion["CustomerMetadataProperties"]["pressroom:version"] == "c1"
    assert champion["ModelApprovalStatus"] == "PendingManualApproval"
    prod_champion = newest_servable_package(sagemaker, BASE_GROUP, approved_only=True)
    assert prod_champion is None or (
        prod_champion["CustomerMetadataProperties"]["pressroom:version"] != "c1"
    )
    [container] = champion["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl"] == registry  # the challenger's own artifact

    released = run("release-parameters", "--env", "dev", "--end-round")

    assert released.exit_code == 0, released.output
    parameters = dict(token.split("=", 1) for token in released.stdout.split())
    assert parameters["HeadlineBaseModelVersion"] == "c1"
    assert parameters["HeadlineBaseModelDataUrl"] == registry
    assert "ChallengerModelVersion" not in parameters


def test_deciding_again_changes_nothing_more(
    sagemaker: Any, cloudformation: StubbedCloudFormation, api: StatsApi, registry: str
) -> None:
    api.serve("A", up=10, down=30)
    api.serve("B", up=32, down=8)
    for _ in range(2):  # the deploy that should end the round failed: the next one decides again
        in_a_round(cloudformation, api)
        code, output = decide()
        assert code == 0, output

    summaries = sagemaker.list_model_packages(ModelPackageGroupName=BASE_GROUP)
    versions = [
        sagemaker.describe_model_package(ModelPackageName=item["ModelPackageArn"])[
            "CustomerMetadataProperties"
        ]["pressroom:version"]
        for item in summaries["ModelPackageSummaryList"]
    ]
    assert sorted(versions) == ["c1", "headline-base-v1"]


def test_a_loser_is_rejected_with_the_reason(
    sagemaker: Any, cloudformation: StubbedCloudFormation, api: StatsApi, registry: str
) -> None:
    api.serve("A", up=32, down=8)
    api.serve("B", up=10, down=30)
    in_a_round(cloudformation, api)

    code, output = decide()

    assert code == 0, output
    assert "rejected challenger c1 in dev" in output
    challenger = find_package(sagemaker, CHALLENGER_GROUP, "c1")
    assert challenger is not None and challenger["ModelApprovalStatus"] == "Rejected"
    assert challenger["ApprovalDescription"].startswith(
        "round decided: readers prefer the champion headline-base headline-base-v1 (A)"
    )
    assert find_package(sagemaker, BASE_GROUP, "c1") is None


def test_an_undecided_round_waits_and_changes_nothing(
    sagemaker: Any, cloudformation: StubbedCloudFormation, api: StatsApi, registry: str
) -> None:
    api.serve("A", up=20, down=20)
    api.serve("B", up=24, down=16)
    in_a_round(cloudformation, api)

    code, output = decide()

    assert code == EXIT_WAITING
    assert output.startswith("waiting: too close: no variant's P(best) reaches 0.95")
    challenger = find_package(sagemaker, CHALLENGER_GROUP, "c1")
    assert challenger is not None
    assert challenger["ModelApprovalStatus"] == "PendingManualApproval"


def test_a_stack_without_a_round_has_nothing_to_decide(
    cloudformation: StubbedCloudFormation, api: StatsApi
) -> None:
    deployed(cloudformation, api.url, ChallengerModelVersion="")

    code, output = decide()

    assert code == EXIT_NO_ROUND
    assert output == "Nothing to decide: dev (pressroom-dev) serves no experiment round"
    assert api.queries == []


def test_a_missing_stack_is_one_line_and_exit_1(cloudformation: StubbedCloudFormation) -> None:
    cloudformation.no_stack()

    code, output = decide()

    assert code == 1
    assert output == "Not decided: stack pressroom-dev does not exist: deploy it first"
