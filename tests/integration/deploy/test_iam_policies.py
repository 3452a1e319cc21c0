"""The IAM policies of every template, app and infra/ alike: no wildcard action, `Resource: "*"`
only where AWS has no resource-level permission (and the template says so), a deploy that cannot
be turned against the account, and an execution role that can create everything the stacks hold.
"""

from __future__ import annotations

import fnmatch
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
import yaml
from moto import mock_aws
from pressroom_common.feedback.store import open_store

from local.cfn import load_stack, load_template
from local.experiment.decide import DeployedRound, Promote, Reject, conclude_on_aws
from local.ops.publish import CHALLENGER_GROUP, PackagedModel, publish
from local.paths import REPO_ROOT, ROOT_TEMPLATE
from local.rounds.state import ModelVersion
from qa.reliability import security
from tests.fixtures.retrain_job import (
    ACCOUNT_ID,
    BUCKET,
    CHAMPION_VERSION,
    CONTAINER,
    REGION,
    client,
    publish_champion,
    run_retrain_job,
)
from tests.integration.deploy.policies import (
    ACCOUNT_TEMPLATE,
    ALL_TEMPLATES,
    APP_TEMPLATES,
    CHECKOV_VENV,
    ENVIRONMENT_TEMPLATE,
    GITHUB_REPOSITORY,
    TOOLS_PYTHON,
    allowed_actions,
    allows,
    condition_keys_of,
    deployed_environment,
    deployed_stack,
    deployed_statements,
    execution_role_calls,
    grants,
    handler_permissions,
    resource_types_of,
    role_policies,
    statements,
    strings,
    transformed,
)
from tests.unit.publish.test_model_publishing import make_packaged_model
from training.feedback.votes import load_votes

needs_tools = pytest.mark.skipif(
    not TOOLS_PYTHON.exists(), reason="needs .venv-tools (make tools): cfn-lint's IAM data, SAM"
)

# Actions that IAM does scope to a resource type, yet are granted on "*" on purpose.
RESOURCE_STAR_BY_CHOICE = {
    "cloudwatch:PutMetricData": "metric data is scoped by namespace (the statement's condition); "
    "its only resource type is CloudWatch's metric-dataset feature, which nothing here uses",
    "cloudwatch:GetMetricData": "metrics have no ARN (target tracking reads the variants' "
    "invocations); its only resource type is the metric-dataset feature, which nothing here uses",
}

# What CloudFormation's handlers for the stacks' resource types may call, but these stacks never
# need: each is for a property or feature the templates do not use.
NOT_NEEDED = {
    "application-autoscaling:DeleteScheduledAction": "no scheduled scaling",
    "application-autoscaling:DescribeScheduledActions": "no scheduled scaling",
    "application-autoscaling:PutScheduledAction": "no scheduled scaling",
    "lambda:DeleteProvisionedConcurrencyConfig": "the scalable targets are SageMaker variants",
    "lambda:GetProvisionedConcurrencyConfig": "the scalable targets are SageMaker variants",
    "lambda:PutProvisionedConcurrencyConfig": "the scalable targets are SageMaker variants",
    "acm-pca:GetCertificate": "the certificate is ACM's, DNS-validated, not a private CA's",
    "acm-pca:IssueCertificate": "the certificate is ACM's, DNS-validated, not a private CA's",
    "cloudfront:CreateConnectionGroup": "no multi-tenant distribution (connection groups)",
    "cloudfront:GetConnectionGroup": "no multi-tenant distribution (connection groups)",
    "cloudfront:GetVpcOrigin": "no VPC origin: the origins are S3 and API Gateway",
    "docdb-elastic:GetCluster": "the secret is attached to an Aurora cluster",
    "redshift:DescribeClusters": "the secret is attached to an Aurora cluster",
    "redshift-serverless:GetNamespace": "the secret is attached to an Aurora cluster",
    "redshift-serverless:ListWorkgroups": "the secret is attached to an Aurora cluster",
    "ec2:AssociateSubnetCidrBlock": "the subnets have no IPv6 block",
    "ec2:DisassociateSubnetCidrBlock": "the subnets have no IPv6 block",
    "ec2:CreateVpcEncryptionControl": "the VPC sets no encryption control",
    "elasticfilesystem:DescribeMountTargets": "no function mounts a file system",
    "firehose:TagDeliveryStream": "log groups deliver to no Firehose stream",
    "logs:CreateLogDelivery": "log groups deliver nowhere else",
    "logs:PutBearerTokenAuthentication": "no log group takes bearer-token ingestion",
    "logs:PutResourcePolicy": "no log group has a resource policy (an account-wide action)",
    "logs:DeleteResourcePolicy": "no log group has a resource policy (an account-wide action)",
    "iam:DeleteRolePermissionsBoundary": "never: no role may lose its boundary (denied outright)",
    "iam:ListRoles": "RDS lists roles only for enhanced monitoring or a directory domain",
    "kms:Encrypt": "functions use Lambda's own key for their environment (no KmsKeyArn)",
    "lambda:GetCodeSigningConfig": "no code signing config",
    "lambda:PutFunctionCodeSigningConfig": "no code signing config",
    "lambda:PassCapacityProvider": "no Lambda Managed Instances capacity provider",
    "lambda:PutFunctionScalingConfig": "no Lambda Managed Instances capacity provider",
    "rds:AddRoleToDBCluster": "no IAM role is associated with the cluster",
    "rds:RemoveRoleFromDBCluster": "no IAM role is associated with the cluster",
    "rds:AddRoleToDBInstance": "no IAM role is associated with the instance",
    "rds:RemoveRoleFromDBInstance": "no IAM role is associated with the instance",
    "rds:CreateDBInstanceReadReplica": "no read replica",
    "rds:PromoteReadReplica": "no read replica",
    "rds:CreateDBSnapshot": "an Aurora instance is not snapshotted on its own (its cluster is)",
    "rds:DescribeDBSnapshots": "nothing is restored from an instance snapshot",
    "rds:RestoreDBClusterFromSnapshot": "the cluster is not restored from a snapshot",
    "rds:RestoreDBClusterToPointInTime": "the cluster is not restored to a point in time",
    "rds:RestoreDBInstanceFromDBSnapshot": "the instance is not restored from a snapshot",
    "rds:RestoreDBInstanceToPointInTime": "the instance is not restored to a point in time",
    "rds:RemoveFromGlobalCluster": "the cluster is in no global cluster",
    "rds:StartDBInstanceAutomatedBackupsReplication": "no cross-region backup replication",
    "rds:StopDBInstanceAutomatedBackupsReplication": "no cross-region backup replication",
    "secretsmanager:ReplicateSecretToRegions": "the secret is not replicated",
    "secretsmanager:RemoveRegionsFromReplication": "the secret is not replicated",
}
NOT_NEEDED_SERVICES = {
    "s3tables": "no S3 table bucket (S3 metadata tables)",
    "s3files": "no function mounts a file system",
}
# What custom resources need beyond any handler: CloudFormation invokes their function.
CUSTOM_RESOURCE_PERMISSIONS = {"lambda:InvokeFunction"}
# IAM's role-writing actions that the `iam:PermissionsBoundary` condition key applies to.
BOUNDARY_CONDITIONED = {
    "iam:AttachRolePolicy",
    "iam:CreateRole",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
}
# The AWS managed policies SAM attaches to function roles, and what they allow.
SAM_MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": {
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    },
    "AWSXrayWriteOnlyAccess": {
        "xray:GetSamplingRules",
        "xray:GetSamplingStatisticSummaries",
        "xray:GetSamplingTargets",
        "xray:PutTelemetryRecords",
        "xray:PutTraceSegments",
    },
}
WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))


def _label(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def _sub(value: Any) -> str:
    """The text of a `!Sub` (or a plain string)."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub[0] if isinstance(sub, list) else sub)
    return str(value)


def _execution_role_statements() -> list[dict[str, Any]]:
    """The statements of the execution role's managed policies (and inline ones, if any)."""
    resources = load_template(ENVIRONMENT_TEMPLATE)["Resources"]
    role = resources["CloudFormationExecutionRole"]["Properties"]
    documents = [
        resources[arn["Ref"]]["Properties"]["PolicyDocument"] for arn in role["ManagedPolicyArns"]
    ]
    return list(statements([*documents, *role.get("Policies", [])]))


@pytest.mark.parametrize("template", ALL_TEMPLATES, ids=_label)
def test_no_statement_allows_a_wildcard_action(template: Path) -> None:
    wild = [
        (statement.get("Sid"), action)
        for statement in statements(load_template(template))
        if statement["Effect"] == "Allow"
        for action in strings(statement["Action"])
        if "*" in action
    ]
    assert wild == []


@needs_tools
@pytest.mark.parametrize("template", ALL_TEMPLATES, ids=_label)
def test_resource_star_only_where_aws_has_no_resource_level_permission(template: Path) -> None:
    misplaced = []
    for statement in statements(load_template(template)):
        if statement["Effect"] != "Allow" or "*" not in strings(statement.get("Resource")):
            continue
        for action in strings(statement["Action"]):
            if resource_types_of(action) and action not in RESOURCE_STAR_BY_CHOICE:
                misplaced.append((statement.get("Sid"), action, resource_types_of(action)))
    assert misplaced == []


def test_every_resource_star_statement_says_why() -> None:
    grants_found = security.wildcard_grants(
        [path.relative_to(REPO_ROOT) for path in ALL_TEMPLATES], root=REPO_ROOT
    )

    assert {grant.template.name for grant in grants_found} >= {"environment.yaml"}
    assert [grant.describe() for grant in grants_found if not grant.justified] == []


@needs_tools
@pytest.mark.parametrize("template", ALL_TEMPLATES, ids=_label)
def test_every_allowed_action_exists(template: Path) -> None:
    unknown = sorted(
        action
        for action in allowed_actions(load_template(template))
        if resource_types_of(action) is None
    )
    assert unknown == []


@pytest.mark.skipif(not CHECKOV_VENV.exists(), reason="needs .venv-checkov (make checkov)")
@pytest.mark.parametrize("template", ALL_TEMPLATES, ids=_label)
def test_each_condition_key_is_one_the_actions_of_its_statement_carry(template: Path) -> None:
    # A key a request does not carry fails StringEquals: IAM would refuse that action outright.
    refused = [
        (statement.get("Sid"), action, key)
        for statement in statements(load_template(template))
        if statement["Effect"] == "Allow"
        for conditions in (statement.get("Condition") or {}).values()
        for key in conditions
        for action in strings(statement["Action"])
        # Service keys only: global (aws:) and identity-provider keys apply to every action.
        if key.split(":")[0].lower() == action.split(":")[0].lower()
        and key.lower() not in condition_keys_of(action)
    ]
    assert refused == []


@needs_tools
def test_the_execution_role_may_do_what_the_handlers_of_the_stacks_resources_need() -> None:
    allowed = allowed_actions(_execution_role_statements())
    types = {
        resource["Type"]
        for template in [ROOT_TEMPLATE, *APP_TEMPLATES]
        for resource in transformed(template)["Resources"].values()
    }
    needed = {
        permission
        for resource_type in types
        for permission in handler_permissions(resource_type)
        # Names IAM does not know are API names it authorizes under another action
        # (s3:DeleteBucketCors is s3:PutBucketCORS), which the list then holds.
        if resource_types_of(permission) is not None
    }
    if any(resource_type.startswith("Custom::") for resource_type in types):
        needed |= CUSTOM_RESOURCE_PERMISSIONS

    missing = sorted(
        permission
        for permission in needed
        if not grants(allowed, permission)
        and permission not in NOT_NEEDED
        and permission.split(":")[0] not in NOT_NEEDED_SERVICES
    )
    assert missing == []
    assert sorted(action for action in NOT_NEEDED if grants(allowed, action)) == []
    assert sorted(action for action in NOT_NEEDED if action not in needed) == [], "stale entries"


@needs_tools
@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_the_execution_role_may_act_on_what_the_stacks_name(environment: str) -> None:
    """Each call on a resource of the deployed stack matches a granted ARN pattern, the checks
    Application Auto Scaling makes of its caller included (prod's autoscaled variants)."""
    calls = sorted(set(execution_role_calls(deployed_stack(environment))))
    granted = deployed_statements(environment, "CloudFormationExecutionRole")
    refused = [
        (action, arn)
        for action, arn in calls
        if action not in NOT_NEEDED
        and action.split(":")[0] not in NOT_NEEDED_SERVICES
        and not allows(granted, action, arn)
    ]

    actions = {action for action, _ in calls}
    assert {"sagemaker:CreateEndpoint", "cloudwatch:PutMetricAlarm"} <= actions
    if environment == "prod":
        assert "sagemaker:UpdateEndpointWeightsAndCapacities" in actions
    assert refused == []


def test_role_writes_need_the_permissions_boundary() -> None:
    for statement in _execution_role_statements():
        if statement["Effect"] != "Allow":
            continue
        writes = BOUNDARY_CONDITIONED & set(strings(statement["Action"]))
        if writes:
            condition = statement.get("Condition", {}).get("StringEquals", {})
            assert condition.get("iam:PermissionsBoundary") == {"Ref": "PermissionsBoundary"}, (
                statement.get("Sid")
            )
            for resource in strings(statement["Resource"]):
                assert _sub(resource).endswith(":role/pressroom-${Environment}-*")
    assert not grants(
        allowed_actions(_execution_role_statements()), "iam:DeleteRolePermissionsBoundary"
    )


def test_the_execution_role_cannot_change_itself_the_deploy_role_or_the_boundary() -> None:
    template = load_template(ENVIRONMENT_TEMPLATE)
    resources = template["Resources"]
    for role in ("CloudFormationExecutionRole", "GitHubDeployRole"):
        assert resources[role]["Properties"]["Path"] == "/pressroom-deploy/"
    assert resources["PermissionsBoundary"]["Properties"]["Path"] == "/pressroom-deploy/"
    denied: dict[str, set[str]] = {}
    for statement in _execution_role_statements():
        if statement["Effect"] == "Deny":
            for resource in strings(statement["Resource"]):
                denied.setdefault(_sub(resource), set()).update(strings(statement["Action"]))
    deploy_roles = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/pressroom-deploy/*"
    role_writes = {
        action
        for statement in _execution_role_statements()
        if statement["Effect"] == "Allow"
        for action in strings(statement["Action"])
        if action.startswith("iam:")
        and action not in {"iam:GetRole", "iam:GetRolePolicy"}
        and not action.startswith(("iam:List", "iam:PassRole", "iam:CreateServiceLinkedRole"))
    } - {"iam:CreateRole"}
    assert role_writes <= denied[deploy_roles]
    boundary = "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/pressroom-deploy/*"
    assert {"iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:SetDefaultPolicyVersion"} <= (
        denied[boundary]
    )
    # And the allowed role ARNs cannot name a role under /pressroom-deploy/ to begin with.
    for statement in _execution_role_statements():
        if statement["Effect"] != "Allow":
            continue
        for resource in strings(statement["Resource"]):
            arn = _sub(resource).replace("${Environment}", "dev")
            own = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/pressroom-deploy/"
            if ":role/" in arn and not arn.startswith(own):
                for name in (
                    "pressroom-dev-cloudformation-execution",
                    "pressroom-dev-github-deploy",
                ):
                    assert not fnmatch.fnmatchcase(own + name, arn), (statement.get("Sid"), arn)


def test_roles_are_passed_only_to_their_services() -> None:
    for statement in _execution_role_statements():
        if statement["Effect"] == "Allow" and "iam:PassRole" in strings(statement["Action"]):
            services = statement["Condition"]["StringEquals"]["iam:PassedToService"]
            assert set(strings(services)) <= {
                "cloudformation.amazonaws.com",
                "lambda.amazonaws.com",
                "sagemaker.amazonaws.com",
            }


@needs_tools
@pytest.mark.parametrize("template", APP_TEMPLATES, ids=_label)
def test_every_role_the_apps_create_carries_the_boundary(template: Path) -> None:
    roles = {
        logical_id: resource["Properties"]
        for logical_id, resource in transformed(template)["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    assert {
        logical_id: properties.get("PermissionsBoundary")
        for logical_id, properties in roles.items()
    } == {logical_id: {"Ref": "PermissionsBoundary"} for logical_id in roles}


def test_the_root_gives_every_app_with_roles_the_boundary_infra_creates() -> None:
    root = load_template(ROOT_TEMPLATE)["Resources"]
    boundary = load_template(ENVIRONMENT_TEMPLATE)["Resources"]["PermissionsBoundary"]
    name = _sub(boundary["Properties"]["ManagedPolicyName"]).replace("${Environment}", "${Stage}")
    expected = (
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy"
        + boundary["Properties"]["Path"]
        + name
    )
    for app in ("Classifier", "Feedback", "InferenceApi"):
        assert _sub(root[app]["Properties"]["Parameters"]["PermissionsBoundary"]) == expected


@needs_tools
def test_the_boundary_allows_everything_the_app_roles_need() -> None:
    boundary = allowed_actions(
        load_template(ENVIRONMENT_TEMPLATE)["Resources"]["PermissionsBoundary"]["Properties"]
    )
    needed: set[str] = set()
    for template in APP_TEMPLATES:
        for resource in transformed(template)["Resources"].values():
            if resource["Type"] != "AWS::IAM::Role":
                continue
            needed |= allowed_actions(resource["Properties"].get("Policies", []))
            for arn in resource["Properties"].get("ManagedPolicyArns", []):
                name = _sub(arn).rsplit("/", 1)[-1]
                needed |= SAM_MANAGED_POLICIES[name]
    assert sorted(action for action in needed if not grants(boundary, action)) == []


def _trusted_subjects(template: Path, role: str) -> list[Any]:
    document = load_template(template)["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]
    (statement,) = document["Statement"]
    assert set(statement["Condition"]) == {"StringEquals"}  # no StringLike wildcards
    return strings(
        statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
    )


def test_each_environment_role_trusts_only_its_own_github_environment() -> None:
    subjects = _trusted_subjects(ENVIRONMENT_TEMPLATE, "GitHubDeployRole")
    assert [_sub(subject) for subject in subjects] == [
        "repo:${GitHubRepository}:environment:${Environment}"
    ]
    parameter = load_template(ENVIRONMENT_TEMPLATE)["Parameters"]["Environment"]
    assert parameter["AllowedValues"] == ["dev", "prod"]


def _admitted(trust: dict[str, Any], claims: dict[str, str]) -> bool:
    """Whether a trust policy admits a GitHub OIDC token with these claims."""
    (statement,) = trust["Statement"]
    checks = {"StringEquals": lambda value, wanted: value == wanted}
    assert set(statement["Condition"]) <= set(checks), "teach this test the operator"
    prefix = "token.actions.githubusercontent.com:"
    return all(
        key.startswith(prefix)
        and key.removeprefix(prefix) in claims
        and any(checks[operator](claims[key.removeprefix(prefix)], w) for w in strings(wanted))
        for operator, conditions in statement["Condition"].items()
        for key, wanted in conditions.items()
    )


def _deploy_role_jobs() -> list[tuple[str, str]]:
    """(workflow/job, GitHub environment) of each job that assumes AWS_DEPLOY_ROLE_ARN; a
    reusable workflow's `inputs.environment` comes from its callers' `with`."""
    jobs = {workflow.name: yaml.safe_load(workflow.read_text())["jobs"] for workflow in WORKFLOWS}
    found = []
    for workflow, workflow_jobs in jobs.items():
        for name, job in workflow_jobs.items():
            assumes = [
                step
                for step in job.get("steps", [])
                if "vars.AWS_DEPLOY_ROLE_ARN" in str(step.get("with", {}).get("role-to-assume"))
            ]
            if not assumes:
                continue
            # Without one the token's `sub` names the ref instead, which no deploy role trusts.
            environment = str(job.get("environment", ""))
            if environment == "${{ inputs.environment }}":
                environments = [
                    caller["with"]["environment"]
                    for callers in jobs.values()
                    for caller in callers.values()
                    if str(caller.get("uses", "")).endswith(f"/{workflow}")
                ]
            else:
                environments = [environment]
            found += [(f"{workflow}/{name}", env) for env in environments]
    return found


def test_the_deploy_role_admits_its_environments_jobs_on_main_only() -> None:
    jobs = _deploy_role_jobs()
    assert {environment for _, environment in jobs} == {"dev", "prod"}
    for job, environment in jobs:
        trust = deployed_environment(environment).resources["GitHubDeployRole"].properties
        token = {
            "aud": "sts.amazonaws.com",
            "sub": f"repo:{GITHUB_REPOSITORY}:environment:{environment}",
            "ref": "refs/heads/main",
        }
        assert _admitted(trust["AssumeRolePolicyDocument"], token), job
        # The same job run from another branch (workflow_dispatch lets anyone pick one).
        branch = {**token, "ref": "refs/heads/any-branch"}
        assert not _admitted(trust["AssumeRolePolicyDocument"], branch), job
        other = "prod" if environment == "dev" else "dev"
        elsewhere = {**token, "sub": f"repo:{GITHUB_REPOSITORY}:environment:{other}"}
        assert not _admitted(trust["AssumeRolePolicyDocument"], elsewhere), job


def test_the_publish_role_trusts_only_main_and_deploys_nothing() -> None:
    subjects = _trusted_subjects(ACCOUNT_TEMPLATE, "GitHubPublishRole")
    assert [_sub(subject) for subject in subjects] == [
        "repo:${GitHubRepository}:ref:refs/heads/main"
    ]
    actions = allowed_actions(role_policies(ACCOUNT_TEMPLATE, "GitHubPublishRole"))
    assert not any(action.startswith(("cloudformation:", "iam:")) for action in actions)


def _github_roles() -> list[dict[str, Any]]:
    return [
        load_template(ENVIRONMENT_TEMPLATE)["Resources"]["GitHubDeployRole"]["Properties"],
        load_template(ACCOUNT_TEMPLATE)["Resources"]["GitHubPublishRole"]["Properties"],
    ]


def test_sessions_outlast_a_first_deploy() -> None:
    steps = [
        step
        for workflow in WORKFLOWS
        for job in yaml.safe_load(workflow.read_text())["jobs"].values()
        for step in job.get("steps", [])
        if str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")
    ]
    assert len(steps) >= 3  # image build, model publishing, the environment deploy
    shortest_role_limit = min(int(role["MaxSessionDuration"]) for role in _github_roles())
    for step in steps:
        duration = int(step["with"]["role-duration-seconds"])
        assert 7200 <= duration <= shortest_role_limit, step["name"]


@needs_tools
def test_only_the_managed_policies_sam_attaches_may_be_attached() -> None:
    attached = {
        arn
        for template in APP_TEMPLATES
        for resource in transformed(template)["Resources"].values()
        if resource["Type"] == "AWS::IAM::Role"
        for arn in resource["Properties"].get("ManagedPolicyArns", [])
    }
    (statement,) = (
        statement
        for statement in _execution_role_statements()
        if statement["Effect"] == "Allow" and "iam:AttachRolePolicy" in strings(statement["Action"])
    )
    allowed = {
        _sub(arn).replace("${AWS::Partition}", "aws")
        for arn in strings(statement["Condition"]["ArnEquals"]["iam:PolicyARN"])
    }
    assert allowed == attached


# IAM's quotas: a role's inline policies, all together, and one managed policy (characters of
# the policy JSON without whitespace).
INLINE_POLICIES_PER_ROLE = 10_240
MANAGED_POLICY = 6_144
INFRA_PARAMETERS = {
    ACCOUNT_TEMPLATE: {"GitHubRepository": "an-organisation/a-repository"},
    ENVIRONMENT_TEMPLATE: {
        "Environment": "prod",
        "GitHubRepository": "an-organisation/a-repository",
        "ArtifactBucketName": "pressroom-artifacts-123456789012-ap-southeast-2",
        "SiteHostedZoneId": "Z0123456789ABCDEFGHIJ",
    },
}


@pytest.mark.parametrize("template", sorted(INFRA_PARAMETERS), ids=_label)
def test_policies_fit_iams_size_quotas(template: Path) -> None:
    stack = load_stack(template, INFRA_PARAMETERS[template], region="ap-southeast-2")

    def size(document: Any) -> int:
        return len(json.dumps(document, separators=(",", ":")))

    for role in stack.walk_resources("AWS::IAM::Role"):
        inline = sum(size(p["PolicyDocument"]) for p in role.properties.get("Policies", []))
        assert inline <= INLINE_POLICIES_PER_ROLE, role.logical_id
    for policy in stack.walk_resources("AWS::IAM::ManagedPolicy"):
        assert size(policy.properties["PolicyDocument"]) <= MANAGED_POLICY, policy.logical_id


# --------------------------------------------------------------------------- pressroom retrain-job

# The IAM action behind each call where its name is not the API's (S3 authorizes HeadObject as
# GetObject); None: the call needs no permission (GetCallerIdentity).
IAM_ACTION_OF_CALL = {"s3:HeadObject": "s3:GetObject", "sts:GetCallerIdentity": None}


def _dev_statements(role: str) -> list[dict[str, Any]]:
    """`role`'s statements in dev, every !Sub resolved (moto's account, the test bucket)."""
    return deployed_statements(
        "dev", role, region=REGION, account_id=ACCOUNT_ID, artifact_bucket=BUCKET
    )


def _resource_of(action: str, params: dict[str, Any]) -> str | None:
    """The ARN a call acts on, where the request names it."""
    sagemaker = f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}"
    if action.startswith("s3:") and "Key" in params:
        return f"arn:aws:s3:::{params['Bucket']}/{params['Key']}"
    if "TrainingJobName" in params:
        return f"{sagemaker}:training-job/{params['TrainingJobName']}"
    if action == "sagemaker:CreateModelPackage":
        return f"{sagemaker}:model-package/{params['ModelPackageGroupName']}/1"
    if action.endswith("ModelPackageGroup"):
        return f"{sagemaker}:model-package-group/{params['ModelPackageGroupName']}"
    return None


@pytest.fixture(scope="module")
def retrain_job_calls(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Any]]:
    """Every call `pressroom retrain-job --wait` makes, from the start to the registration."""
    calls: list[tuple[str, Any]] = []
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
            patch.delenv(variable, raising=False)
        run_retrain_job(tmp_path_factory.mktemp("retrain"), lambda *call: calls.append(call))
    return calls


def test_the_deploy_role_may_make_every_call_of_pressroom_retrain_job(
    retrain_job_calls: list[tuple[str, Any]],
) -> None:
    granted = _dev_statements("GitHubDeployRole")
    refused = []
    for call, params in retrain_job_calls:
        action = IAM_ACTION_OF_CALL.get(call, call)
        if action is not None and not allows(granted, action, _resource_of(action, params)):
            refused.append((action, _resource_of(action, params)))

    assert {call for call, _ in retrain_job_calls} >= {
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:CreateModelPackage",
        "s3:PutObject",
        "cloudformation:DescribeStackResource",
    }
    assert refused == []
    # Registering only for review: approving stays a person's.
    (register,) = (
        s
        for s in granted
        if "sagemaker:CreateModelPackage" in strings(s["Action"])
        and "pressroom-headline-challengers" in str(s["Resource"])
    )
    assert register["Condition"] == {
        "StringEquals": {"sagemaker:ModelApprovalStatus": "PendingManualApproval"}
    }


@pytest.mark.parametrize(
    ("environment", "winner_status"), [("dev", "PendingManualApproval"), ("prod", "Approved")]
)
def test_the_deploy_role_may_make_every_call_of_pressroom_round_decide(
    tmp_path: Path, environment: str, winner_status: str
) -> None:
    """Promoting one challenger and rejecting another, as `pressroom round decide --env ENV`
    records them in the model registry; only a round's winner becomes a headline-base package,
    Approved by prod's role alone (a dev round never changes prod's champion)."""
    calls: list[tuple[str, Any]] = []
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
            patch.delenv(variable, raising=False)
        publish_champion(tmp_path, approve=True)
        for version in ("c1", "c2"):
            challenger = make_packaged_model(tmp_path / version, "headline-base", version)
            publish(
                PackagedModel.load(challenger),
                bucket=BUCKET,
                group=CHALLENGER_GROUP,
                container=CONTAINER,
                s3=client("s3"),
                sagemaker=client("sagemaker"),
            )
        sagemaker = client("sagemaker", lambda *call: calls.append(call))
        for version, outcome in (("c1", Promote("won")), ("c2", Reject("lost"))):
            contest = DeployedRound(
                champion=ModelVersion("headline-base", CHAMPION_VERSION),
                challenger=ModelVersion("headline-base", version),
                started_at=datetime(2026, 6, 1, tzinfo=UTC),
                api_url="https://api.example/dev",
            )
            conclude_on_aws(sagemaker, contest, outcome, approved_only=environment == "prod")
    granted = deployed_statements(
        environment,
        "GitHubDeployRole",
        region=REGION,
        account_id=ACCOUNT_ID,
        artifact_bucket=BUCKET,
    )
    created = [params for call, params in calls if call == "sagemaker:CreateModelPackage"]
    assert [params["ModelApprovalStatus"] for params in created] == [winner_status]

    def resource(call: str, params: dict[str, Any]) -> str | None:
        arn = params.get("ModelPackageArn") or params.get("ModelPackageName")
        return str(arn) if arn else _resource_of(call, params)

    refused = [
        (call, resource(call, params))
        for call, params in calls
        if not allows(granted, call, resource(call, params))
    ]
    assert {call for call, _ in calls} >= {
        "sagemaker:UpdateModelPackage",
        "sagemaker:CreateModelPackage",
    }
    assert refused == []
    # It changes the approval of the round's challengers only; it creates Approved packages of
    # headline-base only, never one of another model.
    assert not allows(
        granted,
        "sagemaker:UpdateModelPackage",
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:model-package/pressroom-headline-base/1",
    )
    assert not allows(
        granted,
        "sagemaker:CreateModelPackage",
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:model-package/pressroom-headline-lite/1",
    )
    (winner,) = (
        s
        for s in granted
        if "sagemaker:CreateModelPackage" in strings(s["Action"])
        and "pressroom-headline-base" in str(s["Resource"])
    )
    assert winner["Condition"] == {"StringEquals": {"sagemaker:ModelApprovalStatus": winner_status}}


def test_the_deploy_role_passes_only_the_retrain_job_role_and_only_to_sagemaker() -> None:
    policies = load_template(ENVIRONMENT_TEMPLATE)["Resources"]["GitHubDeployRole"]["Properties"]
    passes = [
        (statement["Resource"], statement["Condition"])
        for statement in statements(policies["Policies"])
        if "iam:PassRole" in strings(statement["Action"])
    ]

    assert (
        {"Fn::GetAtt": ["RetrainJobRole", "Arn"]},
        {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    ) in passes
    assert len(passes) == 2  # and the execution role, to CloudFormation


def test_the_retrain_job_role_may_do_what_its_job_does(
    retrain_job_calls: list[tuple[str, Any]],
) -> None:
    (request,) = [
        params for call, params in retrain_job_calls if call == "sagemaker:CreateTrainingJob"
    ]
    granted = _dev_statements("RetrainJobRole")
    channel = request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    source = json.loads(request["HyperParameters"]["sagemaker_submit_directory"])
    output = f"{request['OutputDataConfig']['S3OutputPath']}{request['TrainingJobName']}/output/"
    database = parse_qs(urlparse(request["Environment"]["DATABASE_URL"]).query)
    repository, _ = request["AlgorithmSpecification"]["TrainingImage"].split(":")
    registry, name = repository.split("/", 1)
    stream = f"{request['TrainingJobName']}/algo-1-1765080000"
    logs = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/sagemaker/TrainingJobs"
    needed = [
        ("s3:GetObject", f"{channel}model.tar.gz"),
        ("s3:GetObject", f"{channel}manifest.json"),
        ("s3:GetObject", source),
        ("s3:ListBucket", f"s3://{BUCKET}"),
        ("s3:PutObject", f"{output}model.tar.gz"),
        ("s3:PutObject", f"{output}output.tar.gz"),
        ("secretsmanager:GetSecretValue", database["secret_arn"][0]),
        ("ecr:BatchGetImage", f"arn:aws:ecr:{REGION}:{registry.split('.')[0]}:repository/{name}"),
        ("ecr:GetAuthorizationToken", "*"),
        ("logs:CreateLogStream", f"{logs}:log-stream:{stream}"),
        ("logs:PutLogEvents", f"{logs}:log-stream:{stream}"),
        ("cloudwatch:PutMetricData", "*"),
    ]

    missing = [
        (action, resource)
        for action, resource in needed
        if not allows(granted, action, _s3_arn(resource))
    ]
    assert missing == []
    trust = load_template(ENVIRONMENT_TEMPLATE)["Resources"]["RetrainJobRole"]["Properties"]
    assert trust["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]
    # Another environment's challengers and source dirs are out of its reach.
    assert not allows(granted, "s3:PutObject", _s3_arn(output.replace("/dev/", "/prod/")))
    assert not allows(granted, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/retrain/prod/x")


def test_the_retrain_job_role_may_make_the_data_api_calls_of_reading_the_votes(
    retrain_job_calls: list[tuple[str, Any]], aurora_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job reads the votes as `load_votes` does: whatever the Data API driver calls (it
    wraps each statement in a transaction) must be allowed on the job's cluster."""
    made: list[str] = []

    def on_call(model: Any, **_: Any) -> None:
        made.append(f"rds-data:{model.name}")

    # The driver makes its own client from boto3's default session: hook that session.
    session = boto3.Session()
    session.events.register("before-parameter-build.rds-data", on_call)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    store = open_store(aurora_url, migrate=True)
    store.engine.dispose()
    made.clear()
    assert load_votes(aurora_url) == []

    (request,) = [
        params for call, params in retrain_job_calls if call == "sagemaker:CreateTrainingJob"
    ]
    cluster = parse_qs(urlparse(request["Environment"]["DATABASE_URL"]).query)
    granted = _dev_statements("RetrainJobRole")
    assert "rds-data:ExecuteStatement" in made
    refused = sorted(
        {action for action in made if not allows(granted, action, cluster["aurora_cluster_arn"][0])}
    )
    assert refused == []


def _s3_arn(uri: str) -> str:
    return uri.replace("s3://", "arn:aws:s3:::")
