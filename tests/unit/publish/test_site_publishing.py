"""Publishing the static site: moto's S3 and CloudFront (and a stubbed CloudFormation answer)
stand in for AWS, the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from local.ops.deploy import DeployError, publish_site, stack_outputs
from local.paths import SITE_DIR

REGION = "us-east-1"
BUCKET = "pressroom-dev-site"


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any, str]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        cloudfront = boto3.client("cloudfront", region_name=REGION)
        distribution = cloudfront.create_distribution(
            DistributionConfig={
                "CallerReference": "test",
                "Comment": "site",
                "Enabled": True,
                "Origins": {
                    "Quantity": 1,
                    "Items": [
                        {
                            "Id": "site",
                            "DomainName": f"{BUCKET}.s3.amazonaws.com",
                            "S3OriginConfig": {"OriginAccessIdentity": ""},
                        }
                    ],
                },
                "DefaultCacheBehavior": {
                    "TargetOriginId": "site",
                    "ViewerProtocolPolicy": "redirect-to-https",
                    "MinTTL": 0,
                    "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                    "TrustedSigners": {"Enabled": False, "Quantity": 0},
                },
            }
        )["Distribution"]["Id"]
        yield s3, cloudfront, distribution


def write_site(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def bucket_keys(s3: Any) -> dict[str, str]:
    listing = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {
        item["Key"]: s3.head_object(Bucket=BUCKET, Key=item["Key"])["ContentType"]
        for item in listing
    }


def test_first_publish_uploads_every_file_with_its_content_type_and_invalidates(
    tmp_path: Path, aws: tuple[Any, Any, str]
) -> None:
    s3, cloudfront, distribution = aws
    site = write_site(
        tmp_path, {"index.html": "<h1>hi</h1>", "style.css": "h1{}", "vendor/app.js": "1;"}
    )

    result = publish_site(
        site, bucket=BUCKET, distribution_id=distribution, s3=s3, cloudfront=cloudfront
    )

    assert result.uploaded == ["index.html", "style.css", "vendor/app.js"]
    assert bucket_keys(s3) == {
        "index.html": "text/html",
        "style.css": "text/css",
        "vendor/app.js": "text/javascript",
    }
    assert result.invalidation_id is not None
    invalidation = cloudfront.get_invalidation(
        DistributionId=distribution, Id=result.invalidation_id
    )["Invalidation"]
    assert invalidation["InvalidationBatch"]["Paths"]["Items"] == ["/*"]


def test_republishing_an_unchanged_site_uploads_and_invalidates_nothing(
    tmp_path: Path, aws: tuple[Any, Any, str]
) -> None:
    s3, cloudfront, distribution = aws
    site = write_site(tmp_path, {"index.html": "<h1>hi</h1>", "style.css": "h1{}"})
    publish_site(site, bucket=BUCKET, distribution_id=distribution, s3=s3, cloudfront=cloudfront)

    again = publish_site(
        site, bucket=BUCKET, distribution_id=distribution, s3=s3, cloudfront=cloudfront
    )

    assert (again.uploaded, again.deleted, again.unchanged) == ([], [], 2)
    assert again.invalidation_id is None


def test_a_changed_file_is_uploaded_and_a_removed_one_deleted(
    tmp_path: Path, aws: tuple[Any, Any, str]
) -> None:
    s3, cloudfront, distribution = aws
    site = write_site(tmp_path, {"index.html": "v1", "old.js": "gone soon"})
    publish_site(site, bucket=BUCKET, distribution_id=distribution, s3=s3, cloudfront=cloudfront)
    (site / "old.js").unlink()
    (site / "index.html").write_text("v2")

    result = publish_site(
        site, bucket=BUCKET, distribution_id=distribution, s3=s3, cloudfront=cloudfront
    )

    assert (result.uploaded, result.deleted) == (["index.html"], ["old.js"])
    assert list(bucket_keys(s3)) == ["index.html"]
    assert s3.get_object(Bucket=BUCKET, Key="index.html")["Body"].read() == b"v2"
    assert result.invalidation_id is not None


def test_an_empty_site_directory_is_refused_before_touching_the_bucket(
    tmp_path: Path, aws: tuple[Any, Any, str]
) -> None:
    s3, cloudfront, distribution = aws
    s3.put_object(Bucket=BUCKET, Key="index.html", Body=b"live")

    with pytest.raises(DeployError, match="no files to publish"):
        publish_site(
            tmp_path, bucket=BUCKET, distribution_id=distribution, s3=s3, cloudfront=cloudfront
        )

    assert list(bucket_keys(s3)) == ["index.html"]


def test_the_real_site_publishes(aws: tuple[Any, Any, str]) -> None:
    s3, cloudfront, distribution = aws

    result = publish_site(
        SITE_DIR, bucket=BUCKET, distribution_id=distribution, s3=s3, cloudfront=cloudfront
    )

    assert "index.html" in result.uploaded
    assert bucket_keys(s3)["index.html"] == "text/html"


def stubbed_stack(outputs: dict[str, str]) -> Any:
    """A CloudFormation client whose DescribeStacks answers one stack with these outputs."""
    cloudformation = boto3.client(
        "cloudformation", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(cloudformation)
    stubber.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "pressroom-dev",
                    "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
                    "StackStatus": "UPDATE_COMPLETE",
                    "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
                }
            ]
        },
        {"StackName": "pressroom-dev"},
    )
    stubber.activate()
    return cloudformation


def test_stack_outputs_returns_the_named_outputs() -> None:
    cloudformation = stubbed_stack({"SiteBucketName": "b", "SiteDistributionId": "E1", "X": "y"})

    outputs = stack_outputs(cloudformation, "pressroom-dev", "SiteBucketName", "SiteDistributionId")

    assert outputs == {"SiteBucketName": "b", "SiteDistributionId": "E1"}


def test_a_stack_without_the_site_outputs_says_which_are_missing() -> None:
    cloudformation = stubbed_stack({"SiteBucketName": "b"})

    with pytest.raises(DeployError, match="pressroom-dev has no output SiteDistributionId"):
        stack_outputs(cloudformation, "pressroom-dev", "SiteBucketName", "SiteDistributionId")
