"""Votes from the generate page reach the store, and the dashboard shows what the store holds."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect
from pressroom_common.experiment.report import (
    DECISION_PROBABILITY,
    MIN_LIFT,
    MIN_VOTES_PER_VARIANT,
    UNCATEGORISED,
    CredibleInterval,
    ExperimentVerdict,
    LatencyPercentiles,
    StatsReport,
    VariantStats,
    judge,
    judge_categories,
)
from pressroom_common.platform.errors import DependencyUnavailable

from tests.e2e.network import answer_json, error_body
from tests.e2e.pages import DashboardPage, GeneratePage, HeldRequests, VoteCounts
from tests.fixtures.browser import PHONE_VIEWPORT, save_screenshot, wait_until_nothing_overflows

pytestmark = pytest.mark.browser

CHART_IDS = [
    "chart-traffic",
    "chart-uprate",
    "chart-best",
    "chart-loss",
    "chart-latency",
    "chart-errors",
    "chart-votes",
]

DATABASE_DOWN = error_body(DependencyUnavailable, "The feedback database is unavailable")


@pytest.fixture
def generate_page(page: Page, local_stack: Any) -> GeneratePage:
    return GeneratePage(page, local_stack.url).open()


@pytest.fixture
def dashboard(page: Page, local_stack: Any) -> DashboardPage:
    """The dashboard in a second tab of the same browser context (same user)."""
    return DashboardPage(page.context.new_page(), local_stack.url)


def test_a_vote_can_be_changed_and_the_dashboard_counts_follow(
    generate_page: GeneratePage, dashboard: DashboardPage
) -> None:
    # Given a fresh headline and the dashboard's counts for the variant that wrote it
    variant = generate_page.generate("Markets rally as")
    before = dashboard.open().counts(variant)

    # When the user votes up
    generate_page.vote("up")
    expect(generate_page.vote_button("down")).to_have_attribute("aria-pressed", "false")
    # Then the dashboard counts one more up vote
    assert dashboard.reload().counts(variant) == VoteCounts(before.up + 1, before.down)

    # When the user changes their mind: still one vote, now down
    generate_page.vote("down")
    expect(generate_page.vote_button("up")).to_have_attribute("aria-pressed", "false")
    assert dashboard.reload().counts(variant) == VoteCounts(before.up, before.down + 1)

    # Clicking the active vote again sends nothing and changes nothing
    sent: list[str] = []
    generate_page.page.on("request", lambda request: sent.append(request.url))
    generate_page.vote_button("down").click()
    assert dashboard.reload().counts(variant) == VoteCounts(before.up, before.down + 1)
    assert not [url for url in sent if url.endswith("/api/feedback")]
    save_screenshot(generate_page.page, "generate-page-after-votes")


def test_vote_buttons_are_disabled_while_the_vote_is_sent(generate_page: GeneratePage) -> None:
    generate_page.generate("Storm warning for")
    held = HeldRequests(generate_page.page, "**/api/feedback")

    generate_page.vote_button("up").click()

    expect(generate_page.vote_button("up")).to_be_disabled()
    expect(generate_page.vote_button("down")).to_be_disabled()
    expect(generate_page.vote_status).to_have_text("Saving your vote…")
    held.release()
    expect(generate_page.vote_status).to_have_text("Vote saved: good.")
    expect(generate_page.vote_button("down")).to_be_enabled()


def test_a_failed_vote_says_why_and_keeps_the_previous_vote(generate_page: GeneratePage) -> None:
    generate_page.generate("Minister resigns after")
    generate_page.vote("up")
    generate_page.page.route(
        "**/api/feedback", answer_json(HTTPStatus.SERVICE_UNAVAILABLE, DATABASE_DOWN)
    )
    generate_page.vote_button("down").click()

    expect(generate_page.vote_status).to_have_text(
        "Your vote was not saved: The feedback database is unavailable"
    )
    expect(generate_page.vote_button("up")).to_have_attribute("aria-pressed", "true")
    expect(generate_page.vote_button("down")).to_have_attribute("aria-pressed", "false")
    expect(generate_page.vote_button("down")).to_be_enabled()


# How the dashboard opens its sentence for each decision of the API.
VERDICT_OPENINGS = {
    "one_variant": "Only variant",
    "too_few_votes": "Not enough votes yet",
    "winner": "wins:",
    "no_lift": "No lift worth having",
    "too_close": "Too close to call",
}


def test_the_dashboard_shows_every_number_as_text_and_draws_the_charts(
    generate_page: GeneratePage, dashboard: DashboardPage
) -> None:
    variant = generate_page.generate("Tech giant unveils")
    generate_page.vote("up")

    dashboard.open()
    page = dashboard.page

    cells = dashboard.row(variant).locator("td").all_inner_texts()
    traffic, impressions, up, down, up_rate, p_best, loss, p50, p95, errors = cells
    percent = r"\d+\.\d%"
    assert re.fullmatch(percent, traffic) and re.fullmatch(percent, p_best)
    # The page shows the counts and the decision /api/stats answers (with the vote cast above).
    report = httpx.get(f"{dashboard.base_url}api/stats", timeout=30).json()
    [stats] = [v for v in report["variants"] if v["variant"] == variant]
    assert (int(impressions), int(up), int(down)) == (
        stats["impressions"],
        stats["up"],
        stats["down"],
    )
    expect(page.locator("#verdict")).to_contain_text(
        VERDICT_OPENINGS[report["verdict"]["decision"]]
    )
    assert stats["impressions"] >= 1 and stats["up"] >= 1
    assert re.fullmatch(rf"{percent}\n{percent}\u2013{percent}", up_rate)  # rate, then interval
    assert re.fullmatch(r"\d+\.\d\d%", loss)
    assert re.fullmatch(r"\d+ ms|\d+\.\d\d s", p50) and re.fullmatch(r"\d+ ms|\d+\.\d\d s", p95)
    assert re.fullmatch(rf"{percent}\n\d+ of \d+", errors)
    drawn = page.evaluate(
        "(ids) => ids.filter((id) => Chart.getChart(id) !== undefined)", CHART_IDS
    )
    assert drawn == CHART_IDS
    # Votes over time, summed over its slots, agrees with the totals (all test data is recent)
    page.get_by_text("Votes over time as a table").click()
    expect(page.locator("#votes-table tbody tr")).not_to_have_count(0)
    header = page.locator("#votes-table thead th").all_text_contents()
    column = header.index(f"{variant} up")
    slot_counts = [
        int(row.locator("th, td").nth(column).inner_text())
        for row in page.locator("#votes-table tbody tr").all()
    ]
    assert sum(slot_counts) == int(up)
    # By category: a row per category /api/stats has, with its votes and its decision
    categories = {item["category"]: item for item in report["by_category"]}
    expect(page.locator("#category-table tbody tr")).to_have_count(len(categories))
    for name, item in categories.items():
        cells = dashboard.category_cells(name)
        for counts in item["variants"]:
            votes = cells[f"{counts['variant']} votes"]
            assert int(votes) == counts["up"] + counts["down"], name
    save_screenshot(page, "dashboard")

    page.set_viewport_size(PHONE_VIEWPORT)
    wait_until_nothing_overflows(page)
    save_screenshot(page, "dashboard-phone")


def test_the_dashboard_says_so_when_there_is_no_data(page: Page, local_stack: Any) -> None:
    # An empty period, in the store's own report model (so the field names are the real ones)
    empty = StatsReport(
        since=datetime.now(UTC),
        generated_at=datetime.now(UTC),
        total_requests=0,
        variants=[],
        verdict=ExperimentVerdict(
            probability_best={},
            expected_loss={},
            sample_ratio_mismatch_p_value=None,
            weights={"A": 1.0, "B": 1.0},
            probability_no_lift=None,
            decision="one_variant",
            leader=None,
            votes_needed={},
            min_votes_per_variant=30,
            decision_probability=0.95,
            min_lift=0.07,
        ),
        by_category=[],
    ).model_dump_json()
    page.route("**/api/stats**", answer_json(HTTPStatus.OK, empty))
    DashboardPage(page, local_stack.url).open()

    expect(page.get_by_role("heading", name="No data yet")).to_be_visible()
    expect(page.locator("#stats-content")).to_be_hidden()
    save_screenshot(page, "dashboard-empty")


def round_report(
    votes: dict[str, tuple[int, int]],
    categories: dict[str, dict[str, tuple[int, int, int]]] | None = None,
) -> str:
    """/api/stats for `votes` (variant -> up, down) and `categories` (category -> variant ->
    impressions, up, down), judged by the API's own rule."""
    judgement = judge(votes)
    variants = [
        VariantStats(
            variant=name,
            requests=up + down,
            impressions=up + down,
            errors=0,
            error_rate=0.0,
            traffic_share=0.5,
            up=up,
            down=down,
            up_rate=up / (up + down),
            up_rate_interval=CredibleInterval(low=0.0, high=1.0),
            latency_ms=LatencyPercentiles(p50=100.0, p95=200.0),
        )
        for name, (up, down) in votes.items()
    ]
    return StatsReport(
        since=datetime.now(UTC),
        generated_at=datetime.now(UTC),
        total_requests=sum(item.requests for item in variants),
        variants=variants,
        verdict=ExperimentVerdict(
            probability_best=judgement.probability_best,
            expected_loss=judgement.expected_loss,
            sample_ratio_mismatch_p_value=None,
            weights={"A": 0.9, "B": 0.1},
            probability_no_lift=judgement.probability_no_lift,
            decision=judgement.decision,
            leader=judgement.leader,
            votes_needed=judgement.votes_needed,
            min_votes_per_variant=MIN_VOTES_PER_VARIANT,
            decision_probability=DECISION_PROBABILITY,
            min_lift=MIN_LIFT,
        ),
        by_category=judge_categories(categories or {}, judgement.leader),
    ).model_dump_json()


def test_the_dashboard_says_how_many_more_votes_the_round_needs(
    page: Page, local_stack: Any
) -> None:
    votes = {"A": (40, 60), "B": (46, 54)}
    needed = judge(votes).votes_needed
    page.route("**/api/stats**", answer_json(HTTPStatus.OK, round_report(votes)))
    DashboardPage(page, local_stack.url).open()

    expect(page.locator("#verdict")).to_contain_text("Too close to call")
    expect(page.locator("#verdict")).to_contain_text(
        f"needs about {needed['A']} more on A and about {needed['B']} more on B"
    )


def test_the_dashboard_breaks_the_verdict_down_by_category_and_shows_where_it_turns(
    page: Page, local_stack: Any
) -> None:
    # A wins overall; sport's readers prefer B
    categories = {
        "business": {"A": (160, 120, 40), "B": (160, 60, 100)},
        "sport": {"A": (40, 10, 30), "B": (40, 32, 8)},
        UNCATEGORISED: {"A": (80, 45, 35), "B": (80, 40, 40)},
    }
    votes = {
        name: (
            sum(by_variant[name][1] for by_variant in categories.values()),
            sum(by_variant[name][2] for by_variant in categories.values()),
        )
        for name in "AB"
    }
    report = StatsReport.model_validate_json(round_report(votes, categories))
    assert (report.verdict.decision, report.verdict.leader) == ("winner", "A")
    sport = report.by_category[1]
    assert (sport.category, sport.verdict.decision, sport.disagrees_with_overall) == (
        "sport",
        "winner",
        True,
    )
    page.route("**/api/stats**", answer_json(HTTPStatus.OK, report.model_dump_json()))
    dashboard = DashboardPage(page, local_stack.url).open()

    expect(page.get_by_role("heading", name="By category")).to_be_visible()
    rows = page.locator("#category-table tbody tr")
    expect(rows).to_have_count(3)
    assert [row.get_attribute("data-category") for row in rows.all()] == [
        "business",
        "sport",
        "uncategorised",
    ]
    assert dashboard.category_cells("sport") == {
        "Category": "sport",
        "A votes": "40",
        "A up-rate": "25.0%",
        "A P(best)": f"{sport.verdict.probability_best['A']:.1%}",
        "B votes": "40",
        "B up-rate": "80.0%",
        "B P(best)": f"{sport.verdict.probability_best['B']:.1%}",
        "Decision": "Variant B winsnot variant A, the overall leader",
    }
    expect(page.locator('#category-table tr[data-category="sport"]')).to_have_class("disagrees")
    assert dashboard.category_cells("business")["Decision"] == "Variant A wins"
    assert dashboard.category_cells("uncategorised")["Decision"] == "Too close (variant A leads)"
    # The turn is said next to the verdict, not left in the table
    note = page.locator("#category-mismatch")
    expect(note).to_be_visible()
    expect(note).to_have_text(
        "Not every category agrees: in sport, variant B wins (P(best) "
        f"{sport.verdict.probability_best['B']:.1%}), while variant A leads overall. "
        'See "By category" below.'
    )
    save_screenshot(page, "dashboard-by-category")


def test_the_dashboard_calls_a_round_without_lift(page: Page, local_stack: Any) -> None:
    page.route(
        "**/api/stats**",
        answer_json(HTTPStatus.OK, round_report({"A": (400, 600), "B": (401, 599)})),
    )
    DashboardPage(page, local_stack.url).open()

    expect(page.locator("#verdict")).to_contain_text("No lift worth having")
    expect(page.locator("#verdict")).to_contain_text("Keep the current champion")
    # No category in the body: no table and no note
    expect(page.locator("#category-section")).to_be_hidden()
    expect(page.locator("#category-mismatch")).to_be_hidden()


def test_the_dashboard_explains_a_failure_and_shows_no_stale_numbers(
    generate_page: GeneratePage, dashboard: DashboardPage
) -> None:
    generate_page.generate("Bank raises rates")
    dashboard.open()
    expect(dashboard.page.locator("#stats-content")).to_be_visible()
    dashboard.page.route(
        "**/api/stats**", answer_json(HTTPStatus.SERVICE_UNAVAILABLE, DATABASE_DOWN)
    )

    dashboard.page.get_by_role("button", name="Refresh").click()

    expect(dashboard.page.locator("#stats-error")).to_have_text(
        "Could not load the statistics: The feedback database is unavailable"
    )
    expect(dashboard.page.locator("#stats-content")).to_be_hidden()
    expect(dashboard.page.get_by_role("button", name="Refresh")).to_be_enabled()


def test_choosing_a_period_asks_for_stats_since_then(
    generate_page: GeneratePage, dashboard: DashboardPage
) -> None:
    generate_page.generate("Rail strike called off")
    dashboard.open()
    page = dashboard.page

    with page.expect_request("**/api/stats?since=*") as request:
        page.get_by_label("Period").select_option(label="Last hour")
    dashboard.wait_until_loaded()

    [since_text] = parse_qs(urlsplit(request.value.url).query)["since"]
    since = datetime.fromisoformat(since_text)
    assert abs((datetime.now(UTC) - since).total_seconds() - 3600) < 300
    expect(page.locator("#votes-note")).to_contain_text("10-minute slot")
    expect(dashboard.row(generate_page.field("variant").inner_text().split(" ")[0])).to_be_visible()
