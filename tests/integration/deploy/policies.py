"""Reading the templates' IAM policies, the SAM transform's output and AWS's IAM reference.

AWS's reference data comes from the template tools' virtualenv (`.venv-tools`), offline:
cfn-lint ships the IAM service reference (every action and the resource types it can be scoped
to: none means AWS requires `Resource: "*"`) and the CloudFormation registry schemas, whose
`handlers` list the permissions CloudFormation needs to create, read, update and delete each
resource type. aws-sam-translator there expands the SAM templates (`sam_transform.py`).
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from local.cfn import load_template
from local.paths import REPO_ROOT, ROOT_TEMPLATE

# The same walk the reliability scan uses: every statement, both branches of an `Fn::If`.
from qa.reliability.security import _statements as statements

TOOLS_PYTHON = REPO_ROOT / ".venv-tools" / "bin" / "python"
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
