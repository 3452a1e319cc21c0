"""`pressroom preflight`: what an environment needs, read from the templates, against the quotas
of an account (Service Quotas and CloudFront stubbed with botocore's Stubber: moto serves no
SageMaker or Lambda quotas)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from rich.console import Console
from typer.testing import CliRunner

from local.cli import app
from local.ops import preflight
from local.ops.deploy import SAMCONFIG, environment_config
from local.ops.preflight import (
    ENDPOINT_INSTANCES,
    LAMBDA_CONCURRENCY,
    SERVERLESS_CONCURRENCY,
    TRAINING_INSTANCES,
    Need,
    Status,
    check_cloudfront,
    environment_needs,
)
from local.ops.retrain_job import INSTANCE_TYPE as RETRAIN_INSTANCE_TYPE
from local.paths import REPO_ROOT, ROOT_TEMPLATE

REGION = "us-east-1"
TRAINING = TRAINING_INSTANCES.format(instance=RETRAIN_INSTANCE_TYPE)
M5_LARGE_ENDPOINTS = ENDPOINT_INSTANCES.format(instance="ml.m5.large")
# Test values: the command prints whatever code Service Quotas gives each quota.
CODES = {
    SERVERLESS_CONCURRENCY: "L-0000SERV",
    TRAINING: "L-0000TRAI",
    M5_LARGE_ENDPOINTS: "L-0000M5LE",
    LAMBDA_CONCURRENCY: "L-0000LAMB",
}


def needed(needs: list[Need]) -> dict[str, int]:
    return {need.quota_name: need.needed for need in needs}


def test_dev_needs_its_three_serverless_endpoints_concurrency() -> None:
    needs, distributions = environment_needs(environment_config("dev"))
    assert needed(needs) == {
        SERVERLESS_CONCURRENCY: 15,  # headline-base 5 + headline-lite 5 + news-classifier 5
        TRAINING: 1,
        LAMBDA_CONCURRENCY: 20,  # ApiThrottlingBurstLimit in dev's overrides
    }
    (serverless,) = [n for n in needs if n.quota_name == SERVERLESS_CONCURRENCY]
    assert "pressroom-dev-headline-base 5" in serverless.source
    assert distributions == 1


def test_prod_needs_its_realtime_fleet_twice_for_blue_green_updates() -> None:
    needs, _ = environment_needs(environment_config("prod"))
    assert needed(needs) == {
        SERVERLESS_CONCURRENCY: 5,  # the classifier stays serverless
        M5_LARGE_ENDPOINTS: 16,  # 2 variants x RealtimeMaxInstanceCount 4, x2 during an update
        TRAINING: 1,
        LAMBDA_CONCURRENCY: 100,
    }


def test_needs_follow_the_templates_and_the_overrides(tmp_path: Path) -> None:
    root = tmp_path / ROOT_TEMPLATE.name
    shutil.copy(ROOT_TEMPLATE, root)
    for template in (REPO_ROOT / "apps").glob("*/template.yaml"):
        target = tmp_path / template.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True)
        shutil.copy(template, target)
    classifier = tmp_path / "apps" / "classifier" / "template.yaml"
    text, count = re.subn(
        r"(ClassifierMaxConcurrency:\n    Type: Number\n    Default: )5\n",
        r"\g<1>8\n",
        classifier.read_text(),
    )
    assert count == 1
    classifier.write_text(text)
    samconfig = tmp_path / "samconfig.toml"
    samconfig.write_text(
        SAMCONFIG.read_text().replace(
            "Stage=dev HostingMode=serverless", "Stage=dev HostingMode=realtime"
        )
    )

    needs, _ = environment_needs(environment_config("dev", samconfig), root)

    assert needed(needs)[SERVERLESS_CONCURRENCY] == 8
    assert needed(needs)[M5_LARGE_ENDPOINTS] == 16


class StubbedAccount:
    """Service Quotas and CloudFront clients answering what a test says the account has."""

    def __init__(self) -> None:
        self.service_quotas = boto3.client("service-quotas", region_name=REGION)
        self.cloudfront = boto3.client("cloudfront", region_name=REGION)
        self.stubbers = [Stubber(self.service_quotas), Stubber(self.cloudfront)]
        for stubber in self.stubbers:
            stubber.activate()

    def quotas(self, service_code: str, values: dict[str, float], *, default: bool = False) -> None:
        operation = "list_aws_default_service_quotas" if default else "list_service_quotas"
        self.stubbers[0].add_response(
            operation,
            {"Quotas": [self._quota(service_code, name, value) for name, value in values.items()]},
            {"ServiceCode": service_code},
        )

    def distributions(self, count: int) -> None:
        listing = {"Marker": "", "MaxItems": 100, "IsTruncated": False, "Quantity": count}
        self.stubbers[1].add_response("list_distributions", {"DistributionList": listing}, {})

    def assert_all_asked(self) -> None:
        for stubber in self.stubbers:
            stubber.assert_no_pending_responses()

    @staticmethod
    def _quota(service_code: str, name: str, value: float) -> dict[str, Any]:
        return {
            "ServiceCode": service_code,
            "QuotaCode": CODES[name],
            "QuotaName": name,
            "Value": value,
            "Adjustable": True,
        }


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> StubbedAccount:
    for variable, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    stubbed = StubbedAccount()
    clients = {"service-quotas": stubbed.service_quotas, "cloudfront": stubbed.cloudfront}

    def client(session: boto3.session.Session, service: str, **_: Any) -> Any:
        return clients[service]

    monkeypatch.setattr(boto3.session.Session, "client", client)
    # Wide enough that no table cell folds (a pipe is no terminal: rich would assume 80).
    monkeypatch.setattr(preflight, "console", Console(width=240))
    return stubbed


def run_preflight(env: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["preflight", "--env", env])
    return result.exit_code, result.output


def test_an_account_short_of_serverless_concurrency_fails_with_the_request_to_make(
    account: StubbedAccount,
) -> None:
    account.quotas("sagemaker", {SERVERLESS_CONCURRENCY: 10, TRAINING: 2})
    account.quotas("lambda", {LAMBDA_CONCURRENCY: 1000})
    account.distributions(3)

    status, output = run_preflight("dev")

    assert status == 1
    assert re.search(r"Maximum total concurrency .* 15 +│ 10 +│ short", output)
    assert (
        "aws service-quotas request-service-quota-increase --region us-east-1 "
        "--service-code sagemaker --quota-code L-0000SERV --desired-value 15"
    ) in output
    assert "request-service-quota-increase" not in output.split("L-0000SERV")[1]  # only that one
    account.assert_all_asked()


def test_a_sufficient_account_passes(account: StubbedAccount) -> None:
    # No applied value for the training quota: its AWS default is what applies.
    account.quotas("sagemaker", {SERVERLESS_CONCURRENCY: 15})
    account.quotas("sagemaker", {TRAINING: 4}, default=True)
    account.quotas("lambda", {LAMBDA_CONCURRENCY: 1000})
    account.distributions(1)

    status, output = run_preflight("dev")

    assert status == 0, output
    assert "dev fits this account" in output
    assert "request-service-quota-increase" not in output
    account.assert_all_asked()


def test_prod_on_an_account_without_m5_large_endpoints_asks_for_its_fleet(
    account: StubbedAccount,
) -> None:
    account.quotas("sagemaker", {SERVERLESS_CONCURRENCY: 10, M5_LARGE_ENDPOINTS: 0, TRAINING: 0})
    account.quotas("lambda", {LAMBDA_CONCURRENCY: 10})
    account.distributions(1)

    status, output = run_preflight("prod")

    assert status == 1
    for code, value in (("L-0000M5LE", 16), ("L-0000TRAI", 1), ("L-0000LAMB", 100)):
        assert f"--quota-code {code} --desired-value {value}" in output
    assert "--quota-code L-0000SERV" not in output  # 10 covers prod's one serverless endpoint


def test_a_quota_that_cannot_be_read_fails_naming_the_reason(account: StubbedAccount) -> None:
    account.stubbers[0].add_client_error(
        "list_service_quotas",
        "AccessDeniedException",
        "User is not authorized to perform: servicequotas:ListServiceQuotas",
        403,
    )
    account.quotas("lambda", {LAMBDA_CONCURRENCY: 1000})
    account.distributions(1)

    status, output = run_preflight("dev")

    assert status == 1
    assert "cannot read sagemaker quotas from Service Quotas" in output
    assert "servicequotas:ListServiceQuotas" in output


def test_an_account_without_distributions_is_warned_about_cloudfront_verification(
    account: StubbedAccount,
) -> None:
    account.distributions(0)
    finding = check_cloudfront(account.cloudfront, 1)
    assert finding.status is Status.WARN
    assert "verif" in finding.remedy


def test_without_credentials_it_says_so_before_any_call(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    status, output = run_preflight("dev")

    assert status == 1
    assert "no AWS credentials" in output
