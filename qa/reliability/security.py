"""Static security checks: bandit on the Python code, checkov on every template, and no IAM
statement granting `*` actions or resources unless AWS requires it and the template says why.

A finding is acceptable only when it is explained: bandit's medium findings by the table below
(each a false positive or an accepted risk, with the reason), checkov's by an inline `skip` with
a comment in the resource's `Metadata`, a wildcard grant by a `# Wildcard:` comment in its
statement.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.cfn import load_template
from local.paths import REPO_ROOT
from qa.reliability.outcome import Expectation, expect

AREA = "security"
PYTHON_CODE = ("layers", "apps", "local", "qa", "models", "training", "benchmarks")
TEMPLATES = (
    Path("template-root.yaml"),
    *sorted(Path("apps").glob("*/template.yaml")),
    *sorted(Path("infra").glob("*.yaml")),
)
BANDIT = REPO_ROOT / ".venv" / "bin" / "bandit"
CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
WILDCARD_JUSTIFICATION = "# Wildcard:"

# Bandit findings of medium severity that are explained here rather than in the code, keyed by
# test id and the path they are in (ruff's flake8-bandit rules, which honour the code's `noqa`
# comments, already gate the same patterns in `make lint`).
BANDIT_EXPLAINED = {
    ("B615", "models/serving/"): "from_pretrained loads the unpacked model.tar.gz directory, "
    "never the hub",
    ("B615", "training/"): "from_pretrained loads the bundled SmolLM2 / MiniLM packages or a "
    "local directory; a hub name is only used on the AWS path and recorded in the manifest",
    ("B615", "benchmarks/litserve_server.py"): "from_pretrained loads the packaged artifact's "
    "directory, never the hub",
    ("B506", "local/cfn.py"): "yaml.load with _CfnLoader, a SafeLoader subclass",
    ("B310", "apps/feedback/src/migrations/"): "urlopen of CloudFormation's pre-signed https "
    "ResponseURL, the custom-resource protocol",
    ("B113", "local/experiment/"): "a dict named `requests`, not the requests library",
    ("B608", "benchmarks/stats.py"): "the INSERT names the benchmark's own tables and columns "
    "(constants); every value goes through placeholders",
}


@dataclass(frozen=True)
class BanditFinding:
    test_id: str
    severity: str
    path: str
    line: int
    text: str

    @property
    def explanation(self) -> str | None:
        return next(
            (
                reason
                for (test_id, prefix), reason in BANDIT_EXPLAINED.items()
                if test_id == self.test_id and self.path.startswith(prefix)
            ),
            None,
        )


def bandit_findings(root: Path = REPO_ROOT) -> list[BanditFinding]:
    report = _json_report([str(BANDIT), "-r", *PYTHON_CODE, "-f", "json", "-q"], root)
    return [
        BanditFinding(
            result["test_id"],
            result["issue_severity"],
            str(Path(result["filename"])),
            int(result["line_number"]),
            result["issue_text"],
        )
        for result in report["results"]
    ]


def bandit_expectations(findings: Sequence[BanditFinding]) -> list[Expectation]:
    serious = [f for f in findings if f.severity in ("MEDIUM", "HIGH")]
    unexplained = [f for f in serious if f.explanation is None]
    low = len(findings) - len(serious)
    return [
        expect(
            AREA,
            "bandit: no high-severity finding",
            not any(f.severity == "HIGH" for f in findings),
            f"{sum(f.severity == 'HIGH' for f in findings)} high, {len(serious)} medium+, "
            f"{low} low",
        ),
        expect(
            AREA,
            "bandit: every medium finding explained",
            not unexplained,
            "all explained"
            if not unexplained
            else "; ".join(f"{f.test_id} {f.path}:{f.line}" for f in unexplained[:3]),
        ),
    ]


@dataclass(frozen=True)
class CheckovReport:
    passed: int
    skipped: int
    failed: tuple[str, ...]
    """`CKV_ID template resource` of each failed check."""


def checkov_report(root: Path = REPO_ROOT) -> CheckovReport:
    reports = _json_report(
        [
            str(CHECKOV),
            *(arg for template in TEMPLATES for arg in ("-f", str(template))),
            "--framework",
            "cloudformation",
            "--output",
            "json",
            "--quiet",
            "--compact",
            "--skip-download",
        ],
        root,
    )
    reports = reports if isinstance(reports, list) else [reports]
    failed: list[str] = []
    passed = skipped = 0
    for report in reports:
        summary = report.get("summary", {})
        passed += int(summary.get("passed", 0))
        skipped += int(summary.get("skipped", 0))
        failed.extend(
            f"{check['check_id']} {check['file_path'].lstrip('/')} {check['resource']}"
            for check in report.get("results", {}).get("failed_checks", [])
        )
    return CheckovReport(passed, skipped, tuple(failed))


def checkov_expectation(report: CheckovReport) -> Expectation:
    return expect(
        AREA,
        "checkov: no failed check on any template (skips carry a comment)",
        not report.failed,
        f"{report.passed} passed, {report.skipped} skipped with a reason, "
        f"{len(report.failed)} failed"
        + (f": {', '.join(report.failed[:3])}" if report.failed else ""),
    )


@dataclass(frozen=True)
class WildcardGrant:
    template: Path
    sid: str | None
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    justified: bool

    def describe(self) -> str:
        return f"{self.template}:{self.sid or '(no Sid)'}"


def wildcard_grants(
    templates: Sequence[Path] = TEMPLATES, root: Path = REPO_ROOT
) -> list[WildcardGrant]:
    """Every Allow statement whose actions include `*` / `service:*` or whose resources
    include `*`, with whether the template justifies it."""
    grants = []
    for template in templates:
        text = (root / template).read_text(encoding="utf-8")
        for statement in _statements(load_template(root / template)):
            if statement.get("Effect") != "Allow":
                continue
            actions = _strings(statement.get("Action"))
            resources = _strings(statement.get("Resource"))
            wild_actions = tuple(a for a in actions if a == "*" or a.endswith(":*"))
            wild_resources = tuple(r for r in resources if r == "*")
            if wild_actions or wild_resources:
                sid = statement.get("Sid")
                grants.append(
                    WildcardGrant(
                        template,
                        sid,
                        wild_actions,
                        wild_resources,
                        sid is not None and _justified(text, sid),
                    )
                )
    return grants


def wildcard_expectation(grants: Sequence[WildcardGrant]) -> Expectation:
    unjustified = [grant.describe() for grant in grants if not grant.justified]
    return expect(
        AREA,
        "IAM: no `*` action or resource without a `# Wildcard:` reason",
        not unjustified,
        f"{len(grants)} wildcard grant(s), {len(unjustified)} unjustified"
        + (f": {', '.join(unjustified[:3])}" if unjustified else ""),
    )


def _json_report(command: list[str], root: Path) -> Any:
    """Run a scanner over the repository and parse the JSON report it prints.

    Its exit status only says whether it found something, which the report itself tells.
    """
    completed = subprocess.run(  # noqa: S603 - a fixed command line
        command, cwd=root, capture_output=True, text=True, check=False, timeout=600
    )
    return json.loads(completed.stdout)


def _statements(node: Any) -> Iterator[dict[str, Any]]:
    """Policy statements anywhere in a template, both branches of an `Fn::If` included."""
    if isinstance(node, dict):
        if "Effect" in node and ("Action" in node or "NotAction" in node):
            yield node
            return
        for key, value in node.items():
            if key == "Fn::If" and isinstance(value, list):
                for branch in value[1:]:
                    yield from _statements(branch)
            else:
                yield from _statements(value)
    elif isinstance(node, list):
        for item in node:
            yield from _statements(item)


def _strings(value: Any) -> tuple[str, ...]:
    """The literal strings of an Action / Resource (intrinsics such as !Sub are scoped ARNs)."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def _justified(text: str, sid: str) -> bool:
    """A `# Wildcard:` comment in the statement, or in the comment lines just above it."""
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.strip() != f"- Sid: {sid}":
            continue
        item_indent = len(line) - len(line.lstrip())
        above = []
        for previous in reversed(lines[:number]):
            if not previous.strip().startswith("#"):
                break
            above.append(previous)
        body = []
        for following in lines[number + 1 :]:
            stripped = following.strip()
            indent = len(following) - len(following.lstrip())
            if stripped and not stripped.startswith("#") and indent <= item_indent:
                break  # the next statement, or the end of the list
            body.append(following)
        while body and (not body[-1].strip() or body[-1].strip().startswith("#")):
            body.pop()  # comments just before the next statement belong to it
        return any(WILDCARD_JUSTIFICATION in candidate for candidate in above + body)
    return False
