"""`pressroom up`'s web ACL options: on by default with the template's limits, a limit changed by
option, and bad values refused before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from local.cfn import load_template
from local.cli import app
from local.devstack.stack import WAF_MAX_LIMIT, WAF_MIN_LIMIT, edge_parameters
from local.devstack.summary import summary_panel
from local.emulate.sagemaker.endpoints import load_local_stacks
from local.emulate.waf import discover_web_acl
from local.paths import APPS_DIR, DEFAULT_MODELS_ROOT, ROOT_TEMPLATE


@pytest.mark.parametrize(
    ("options", "limits"),
    [
        ((True, None, None), [200, 2000]),  # the template's defaults
        ((True, 50, None), [50, 2000]),
        ((True, None, 600), [200, 600]),
    ],
)
def test_up_applies_the_web_acl_with_the_limits_it_is_given(
    options: tuple[bool, int | None, int | None], limits: list[int]
) -> None:
    [root] = load_local_stacks("smoke", DEFAULT_MODELS_ROOT, None, edge_parameters(*options))

    web_acl = discover_web_acl(root)

    assert web_acl is not None
    assert [rule.limit for rule in web_acl.rules] == limits


def test_no_waf_serves_without_the_web_acl() -> None:
    [root] = load_local_stacks(
        "smoke", DEFAULT_MODELS_ROOT, None, edge_parameters(False, None, None)
    )

    assert discover_web_acl(root) is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--no-waf", "--reader-rate-limit", "50"],
            "--reader-rate-limit: a limit of the web ACL, which --no-waf turns off",
        ),
        (["--reader-rate-limit", "5"], "'--reader-rate-limit': Input should be greater than"),
        (["--client-ip-rate-limit", "0"], "'--client-ip-rate-limit': Input should be greater"),
    ],
)
def test_bad_limit_options_are_refused_naming_the_option(
    arguments: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["up", *arguments])

    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.replace("│", " ").split())  # unwrap rich's box


def test_the_options_take_the_bounds_the_templates_declare() -> None:
    for template in (ROOT_TEMPLATE, APPS_DIR / "frontend" / "template.yaml"):
        parameters = load_template(template)["Parameters"]
        for name in ("ReaderRateLimit", "ClientIpRateLimit"):
            bounds = (parameters[name]["MinValue"], parameters[name]["MaxValue"])
            assert bounds == (WAF_MIN_LIMIT, WAF_MAX_LIMIT), (template.name, name)


def test_the_summary_says_what_the_limits_are(tmp_path: Path) -> None:
    console = Console(width=200, record=True)

    console.print(
        summary_panel(
            "http://127.0.0.1:8080/", [], tmp_path / "p.log", limits="200 per 5 min per x-user-id"
        )
    )

    assert "200 per 5 min per x-user-id: 429 past them" in console.export_text()
