"""`pressroom preflight --env dev|prod`: can this AWS account hold ENV, before a deploy finds out?

A fresh account's quotas are below what the stacks need (new accounts may get 10 serverless
SageMaker concurrency, 0 `ml.m5.large` endpoint instances, 10 concurrent Lambda executions),
and CloudFormation only says so half-way through a first deploy, then rolls it back. This
compares what ENV needs with what the account allows, with read-only calls:

- What ENV needs comes from the templates resolved with samconfig.toml's `parameter_overrides`
  for ENV (`local.cfn`), never from numbers kept here: the serverless endpoints' MaxConcurrency
  summed; for each instance type, the instance-backed variants at their autoscaling ceiling,
  twice over (SageMaker updates an instance-backed endpoint blue/green: the new fleet runs
  beside the old until it has baked); the API stage's burst limit in concurrent Lambda
  executions (each admitted request holds one); one retraining job's instance.
- What the account allows comes from Service Quotas (`ListServiceQuotas`, and the AWS defaults
  where it has no applied value), matched by the quota's name, so its code is AWS's own.
- CloudFront: `ListDistributions` says whether this caller may use it; an account with no
  distribution yet may still be refused its first one until AWS Support verifies it, which no
  read-only call can tell, so that is reported as a warning.

Each shortfall gets the `aws service-quotas request-service-quota-increase` command to run.
The exit status is 1 when anything is short or could not be checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import boto3
import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table

from local.cfn import Stack, load_stack
from local.emulate.gateway import stage_throttle
from local.ops.deploy import (
    SAMCONFIG,
    DeployError,
    EnvironmentConfig,
    clean_failure,
    environment_config,
    model_parameters,
    parse_overrides,
)
from local.ops.retrain_job import INSTANCE_TYPE as RETRAIN_INSTANCE_TYPE
from local.paths import ROOT_TEMPLATE

# Service Quotas' names for the quotas checked (`{instance}` is an instance type).
SERVERLESS_CONCURRENCY = (
    "Maximum total concurrency that can be allocated across all serverless endpoints"
)
ENDPOINT_INSTANCES = "{instance} for endpoint usage"
TRAINING_INSTANCES = "{instance} for training job usage"
LAMBDA_CONCURRENCY = "Concurrent executions"
CLOUDFRONT_VERIFICATION = (
    "a new account can be refused its first distribution ('Your account must be verified "
    "before you can add new CloudFront resources'): if this account is new, ask AWS Support "
    "to verify it for CloudFront before deploying"
)


class Status(Enum):
    OK = "ok"
    SHORT = "short"
    WARN = "check"
    ERROR = "error"


@dataclass(frozen=True)
class Need:
    """One quota ENV needs, and where in the templates the number comes from."""

    service_code: str
    quota_name: str
    needed: int
    source: str

    @property
    def label(self) -> str:
        return f"{self.service_code}: {self.quota_name}"


@dataclass(frozen=True)
class Finding:
    check: str
    needed: str
    available: str
    status: Status
    source: str
    remedy: str = ""


# --------------------------------------------------------------------------- what ENV needs


def environment_needs(
    config: EnvironmentConfig, root: Path = ROOT_TEMPLATE
) -> tuple[list[Need], int]:
    """The quotas ENV needs and the CloudFront distributions it creates, from the templates
    resolved with ENV's parameter overrides."""
    stack = _resolved_stack(config, root)
    needs = [*_serverless_needs(stack), *_instance_needs(stack)]
    needs.append(
        Need(
            "sagemaker",
            TRAINING_INSTANCES.format(instance=RETRAIN_INSTANCE_TYPE),
            1,
            "one `pressroom retrain-job` training job",
        )
    )
    burst = sum(
        throttle.burst
        for api in stack.walk_resources("AWS::Serverless::Api")
        if (throttle := stage_throttle(api.properties.get("MethodSettings") or []))
    )
    if burst:
        needs.append(
            Need(
                "lambda",
                LAMBDA_CONCURRENCY,
                burst,
                f"the API stage's burst limit ({burst} requests at once, one execution each)",
            )
        )
    distributions = sum(1 for _ in stack.walk_resources("AWS::CloudFront::Distribution"))
    return needs, distributions


def _resolved_stack(config: EnvironmentConfig, root: Path) -> Stack:
    overrides: dict[str, Any] = parse_overrides(config.parameter_overrides)
    # The models' artifacts come from the registry at deploy time; any valid value resolves
    # the same resources, and only their sizes are read here.
    for model, parameters in model_parameters(root).items():
        overrides.setdefault(parameters.data_url, f"s3://preflight/{model}/model.tar.gz")
        overrides.setdefault(parameters.version, "preflight")
    return load_stack(root, overrides, stack_name=config.stack_name, region=config.region)


def _endpoint_variants(stack: Stack) -> Iterator[tuple[str, dict[str, Any]]]:
    for endpoint in stack.walk_resources("AWS::SageMaker::Endpoint"):
        config = stack.find_by_name(
            "AWS::SageMaker::EndpointConfig", str(endpoint.properties["EndpointConfigName"])
        )
        for variant in config.properties["ProductionVariants"]:
            yield str(endpoint.properties.get("EndpointName", endpoint.physical_name)), variant


def _serverless_needs(stack: Stack) -> list[Need]:
    shares = [
        (endpoint, int(variant["ServerlessConfig"]["MaxConcurrency"]))
        for endpoint, variant in _endpoint_variants(stack)
        if "ServerlessConfig" in variant
    ]
    if not shares:
        return []
    parts = " + ".join(f"{endpoint} {share}" for endpoint, share in shares)
    return [
        Need(
            "sagemaker",
            SERVERLESS_CONCURRENCY,
            sum(share for _, share in shares),
            f"MaxConcurrency of {len(shares)} serverless endpoint(s): {parts}",
        )
    ]


def _instance_needs(stack: Stack) -> list[Need]:
    ceilings = {
        str(target.properties["ResourceId"]): int(target.properties["MaxCapacity"])
        for target in stack.walk_resources("AWS::ApplicationAutoScaling::ScalableTarget")
        if target.properties.get("ServiceNamespace") == "sagemaker"
    }
    per_type: dict[str, list[tuple[str, int, int]]] = {}
    for endpoint, variant in _endpoint_variants(stack):
        if "InstanceType" not in variant:
            continue
        initial = int(variant["InitialInstanceCount"])
        ceiling = ceilings.get(f"endpoint/{endpoint}/variant/{variant['VariantName']}", initial)
        per_type.setdefault(str(variant["InstanceType"]), []).append(
            (f"{endpoint}/{variant['VariantName']}", initial, ceiling)
        )
    needs = []
    for instance_type, variants in per_type.items():
        ceiling = sum(top for _, _, top in variants)
        first = sum(initial for _, initial, _ in variants)
        parts = " + ".join(f"{name} {top}" for name, _, top in variants)
        needs.append(
            Need(
                "sagemaker",
                ENDPOINT_INSTANCES.format(instance=instance_type),
                2 * ceiling,
                f"autoscaling ceiling {parts}, twice while a blue/green update runs "
                f"(creating the endpoint alone takes {first})",
            )
        )
    return needs


# ------------------------------------------------------------------- what the account allows


def account_quotas(service_quotas: Any, service_code: str, names: Iterable[str]) -> dict[str, Any]:
    """Service Quotas' record of each named quota of `service_code`: the applied value, or AWS's
    default where the account has none applied (ListServiceQuotas leaves those out)."""
    wanted = set(names)
    found = _quotas_named(service_quotas, "list_service_quotas", service_code, wanted)
    if wanted - found.keys():
        defaults = _quotas_named(
            service_quotas, "list_aws_default_service_quotas", service_code, wanted - found.keys()
        )
        found.update(defaults)
    return found


def _quotas_named(
    client: Any, operation: str, service_code: str, names: set[str]
) -> dict[str, Any]:
    found = {}
    for page in client.get_paginator(operation).paginate(ServiceCode=service_code):
        for quota in page.get("Quotas", []):
            if quota.get("QuotaName") in names:
                found[quota["QuotaName"]] = quota
    return found


def check_quotas(needs: list[Need], service_quotas: Any, region: str) -> list[Finding]:
    findings: list[Finding] = []
    services = list(dict.fromkeys(need.service_code for need in needs))
    for service_code in services:
        wanted = [need for need in needs if need.service_code == service_code]
        try:
            quotas = account_quotas(service_quotas, service_code, (n.quota_name for n in wanted))
        except (BotoCoreError, ClientError) as error:
            findings.extend(
                Finding(
                    need.label,
                    str(need.needed),
                    "?",
                    Status.ERROR,
                    need.source,
                    f"cannot read {service_code} quotas from Service Quotas: {error}",
                )
                for need in wanted
            )
            continue
        findings.extend(_compare(need, quotas.get(need.quota_name), region) for need in wanted)
    return findings


def _compare(need: Need, quota: Mapping[str, Any] | None, region: str) -> Finding:
    if quota is None:
        return Finding(
            need.label,
            str(need.needed),
            "?",
            Status.ERROR,
            need.source,
            f"Service Quotas lists no {need.service_code} quota of that name in {region} "
            "(is the instance type offered there?)",
        )
    value = float(quota["Value"])
    available = f"{value:g}"
    if value >= need.needed:
        return Finding(need.label, str(need.needed), available, Status.OK, need.source)
    if not quota.get("Adjustable", True):
        remedy = "not adjustable through Service Quotas: ask AWS Support"
    else:
        remedy = (
            f"aws service-quotas request-service-quota-increase --region {region} "
            f"--service-code {need.service_code} --quota-code {quota['QuotaCode']} "
            f"--desired-value {need.needed}"
        )
    return Finding(need.label, str(need.needed), available, Status.SHORT, need.source, remedy)


def check_cloudfront(cloudfront: Any, distributions: int) -> Finding:
    needed = f"{distributions} distribution(s)"
    source = "AWS::CloudFront::Distribution resources"
    try:
        existing = int(cloudfront.list_distributions()["DistributionList"]["Quantity"])
    except (BotoCoreError, ClientError) as error:
        return Finding(
            "CloudFront", needed, "?", Status.ERROR, source, f"cannot list distributions: {error}"
        )
    available = f"{existing} in use"
    if existing == 0:  # an account that made one has been verified
        return Finding(
            "CloudFront", needed, available, Status.WARN, source, CLOUDFRONT_VERIFICATION
        )
    return Finding("CloudFront", needed, available, Status.OK, source)


# --------------------------------------------------------------------------- command

commands = typer.Typer()
console = Console()
_STYLE = {Status.OK: "green", Status.SHORT: "red", Status.WARN: "yellow", Status.ERROR: "red"}


def preflight(config: EnvironmentConfig, session: Any, root: Path = ROOT_TEMPLATE) -> list[Finding]:
    needs, distributions = environment_needs(config, root)
    with console.status(f"reading the quotas of the account in {config.region}"):
        findings = check_quotas(needs, session.client("service-quotas"), config.region)
        if distributions:
            # CloudFront is global; its API answers in us-east-1.
            findings.append(
                check_cloudfront(
                    session.client("cloudfront", region_name="us-east-1"), distributions
                )
            )
    return findings


def report(env: str, findings: list[Finding]) -> None:
    table = Table(title=f"Can this account hold {env}?", title_justify="left")
    for column in ("check", "needed", "available", "status", "needed because"):
        table.add_column(column, overflow="fold")
    for finding in findings:
        table.add_row(
            finding.check,
            finding.needed,
            finding.available,
            f"[{_STYLE[finding.status]}]{finding.status.value}[/]",
            finding.source,
        )
    console.print(table)
    for finding in findings:
        if finding.remedy:
            # Unwrapped, so that a command stays one line to copy.
            console.print(
                f"[{_STYLE[finding.status]}]{finding.check}[/]: {finding.remedy}", soft_wrap=True
            )


@commands.command("preflight")
def preflight_command(
    env: Annotated[str, typer.Option(help="samconfig.toml environment (dev, prod).")],
) -> None:
    """Read-only: compare the quotas ENV needs (from the templates) with this AWS account's."""
    with clean_failure():
        config = environment_config(env, SAMCONFIG)
        session = boto3.session.Session(region_name=config.region)
        if session.get_credentials() is None:
            raise DeployError(
                "no AWS credentials: the preflight reads the quotas of the account you deploy "
                "to (set AWS_PROFILE, or run `aws configure` / `aws sso login`)"
            )
        findings = preflight(config, session)
    report(env, findings)
    short = sum(finding.status is Status.SHORT for finding in findings)
    unchecked = sum(finding.status is Status.ERROR for finding in findings)
    if short:
        console.print(
            f"[red]{short} quota(s) short[/]: request the increases above (approval can take "
            "a day), then run this again before deploying"
        )
    if unchecked:
        console.print(f"[red]{unchecked} check(s) could not run[/]: the reasons are above")
    if short or unchecked:
        raise typer.Exit(1)
    console.print(f"[green]{env} fits this account[/]")
