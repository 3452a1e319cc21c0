"""Fixtures of the publishing commands' tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

REGION = "us-east-1"


@pytest.fixture
def commands_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto behind the commands' own boto3 sessions (region and fake keys from the environment)."""
    for variable, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


STACK = "pressroom-dev"
STACK_CREATED = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


class StubbedCloudFormation:
    """A CloudFormation client whose DescribeStacks answers what a test deployed."""

    def __init__(self) -> None:
        self.client = boto3.client("cloudformation", region_name=REGION)
        self.stubber = Stubber(self.client)
        self.stubber.activate()

    def no_stack(self) -> None:
        self.stubber.add_client_error(
            "describe_stacks", "ValidationError", f"Stack with id {STACK} does not exist"
        )

    def deployed(self, outputs: dict[str, str] | None = None, **parameters: str) -> None:
        """The stack with these parameters (and outputs), as DescribeStacks answers it."""
        stack: dict[str, Any] = {
            "StackName": STACK,
            "CreationTime": STACK_CREATED,
            "StackStatus": "UPDATE_COMPLETE",
            "Parameters": [
                {"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()
            ],
        }
        if outputs:
            stack["Outputs"] = [
                {"OutputKey": key, "OutputValue": value} for key, value in outputs.items()
            ]
        self.stubber.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": STACK})


@pytest.fixture
def cloudformation(commands_aws: None, monkeypatch: pytest.MonkeyPatch) -> StubbedCloudFormation:
    """A stubbed CloudFormation behind the commands' sessions too (moto's needs packages this
    project does not pin); each DescribeStacks answers what the test queued."""
    stubbed = StubbedCloudFormation()
    session_client = boto3.session.Session.client

    def client(session: boto3.session.Session, service: str, **kwargs: Any) -> Any:
        if service == "cloudformation":
            return stubbed.client
        return session_client(session, service, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", client)
    return stubbed
