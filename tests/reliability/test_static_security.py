"""Static security: bandit and checkov leave nothing unexplained, and no IAM statement grants
`*` actions or resources unless its template says why (`# Wildcard:`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.reliability import security


def test_no_iam_statement_grants_a_wildcard_without_a_reason() -> None:
    grants = security.wildcard_grants()

    assert grants, "the ECR / CloudWatch statements need Resource '*' and are found"
    assert [grant.describe() for grant in grants if not grant.justified] == []


def test_an_unexplained_wildcard_grant_is_caught(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        """
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      Policies:
        - PolicyName: too-wide
          PolicyDocument:
            Statement:
              - Sid: Everything
                Effect: Allow
                Action: "*"
                Resource: "*"
              # Wildcard: PutMetricData has no resource-level permissions.
              - Sid: Metrics
                Effect: Allow
                Action: cloudwatch:PutMetricData
                Resource: "*"
              - Sid: Scoped
                Effect: Allow
                Action: s3:GetObject
                Resource: !Sub arn:aws:s3:::bucket/*
              - Effect: Deny
                Action: s3:*
                Resource: "*"
"""
    )

    grants = security.wildcard_grants([Path("template.yaml")], root=tmp_path)

    assert [(g.sid, g.actions, g.resources, g.justified) for g in grants] == [
        ("Everything", ("*",), ("*",), False),
        ("Metrics", (), ("*",), True),
    ]


def test_bandit_finds_nothing_high_and_nothing_unexplained() -> None:
    expectations = security.bandit_expectations(security.bandit_findings())

    assert [e.evidence for e in expectations if not e.held] == []


@pytest.mark.skipif(not security.CHECKOV.exists(), reason="make checkov installs it")
def test_checkov_passes_every_template_or_the_template_says_why() -> None:
    report = security.checkov_report()

    assert report.failed == ()
    assert report.passed > 0 and report.skipped > 0
