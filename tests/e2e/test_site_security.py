"""Hostile text stays text, and the site runs under the production Content-Security-Policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from local.cfn import load_template
from tests.e2e.pages import DashboardPage, GeneratePage
from tests.fixtures.browser import PageProblems, save_screenshot

pytestmark = pytest.mark.browser

FRONTEND_TEMPLATE = Path(__file__).resolve().parents[2] / "apps" / "frontend" / "template.yaml"
HOSTILE_PROMPT = '<img src=x onerror=alert(1)> <script>window.pwned = 1</script> "&amp;'
COLLECT_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def production_csp() -> str:
    """The CSP CloudFront sends, read from the frontend template (one source of truth)."""
    policy = load_template(FRONTEND_TEMPLATE)["Resources"]["SecurityHeadersPolicy"]
    headers = policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    csp: str = headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    # The local origin is plain http://127.0.0.1; upgrading its requests to https would only
    # break them. Every other directive applies unchanged.
    return "; ".join(
        part.strip() for part in csp.split(";") if part.strip() != "upgrade-insecure-requests"
    )


def test_html_in_a_prompt_is_shown_literally_and_never_runs(page: Page, local_stack: Any) -> None:
    site = GeneratePage(page, local_stack.url).open()

    site.generate(HOSTILE_PROMPT)

    expect(site.field("prompt")).to_have_text(HOSTILE_PROMPT.strip())
    expect(site.history.first).to_contain_text("<img src=x onerror=alert(1)>")
    assert page.locator("img").count() == 0
    assert page.locator("main script").count() == 0
    assert page.evaluate("() => window.pwned") is None
    # the page fixture also fails the test if alert() opened a dialog
    save_screenshot(page, "generate-page-hostile-prompt")


def test_both_pages_run_clean_under_the_production_csp(
    page: Page, page_problems: PageProblems, local_stack: Any
) -> None:
    csp = production_csp()
    assert "script-src 'self'" in csp and "style-src 'self'" in csp

    def with_csp(route: Route) -> None:
        if route.request.resource_type != "document":
            route.continue_()
            return
        response = route.fetch()
        route.fulfill(
            response=response, headers={**response.headers, "content-security-policy": csp}
        )

    page.route(f"{local_stack.url}**", with_csp)
    page.add_init_script(COLLECT_CSP_VIOLATIONS)

    site = GeneratePage(page, local_stack.url).open()
    site.generate("Markets rally as")
    site.vote("up")
    assert page.evaluate("() => window.cspViolations") == []

    DashboardPage(page, local_stack.url).open()
    expect(page.locator("#stats-content")).to_be_visible()
    assert page.evaluate("() => Chart.getChart('chart-traffic') !== undefined")
    assert page.evaluate("() => window.cspViolations") == []
    assert not [text for text in page_problems.console_errors if "Content Security Policy" in text]
