"""Page objects: what a user does on the generate page and reads on the dashboard."""

from __future__ import annotations

from dataclasses import dataclass

from playwright.sync_api import Locator, Page, Route, expect

MODEL_OF_VARIANT = {"A": "headline-base", "B": "headline-lite"}
NEWS_CATEGORIES = {"business", "entertainment", "politics", "sport", "tech"}


class HeldRequests:
    """Holds the page's requests to a URL pattern until released, to observe in-flight states."""

    def __init__(self, page: Page, url_pattern: str) -> None:
        self.page = page
        self.url_pattern = url_pattern
        self.routes: list[Route] = []
        page.route(url_pattern, self._hold)

    def _hold(self, route: Route) -> None:
        self.routes.append(route)

    def release(self) -> None:
        """Let the held request(s) through to the real server and stop holding new ones."""
        # Route handlers run while Playwright waits; give it up to ~10 s to deliver one.
        for _ in range(200):
            if self.routes:
                break
            self.page.wait_for_timeout(50)
        assert self.routes, f"no request to {self.url_pattern} was made"
        for route in self.routes:
            route.continue_()
        self.page.unroute(self.url_pattern, self._hold)


@dataclass(frozen=True)
class VoteCounts:
    up: int
    down: int


class GeneratePage:
    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url

    def open(self) -> GeneratePage:
        self.page.goto(self.base_url)
        expect(self.page.get_by_role("heading", name="Write a headline")).to_be_visible()
        return self

    @property
    def prompt(self) -> Locator:
        return self.page.get_by_label("Prompt")

    @property
    def generate_button(self) -> Locator:
        return self.page.locator("#generate-button")

    @property
    def error(self) -> Locator:
        return self.page.locator("#generate-error")

    @property
    def card(self) -> Locator:
        return self.page.locator("#answer .card")

    def field(self, name: str) -> Locator:
        return self.card.locator(f'[data-field="{name}"]')

    def vote_button(self, vote: str) -> Locator:
        return self.card.get_by_role("button", name="Good" if vote == "up" else "Bad")

    @property
    def vote_status(self) -> Locator:
        return self.card.locator(".vote-status")

    def set_setting(self, name: str, value: str) -> None:
        settings = self.page.locator("details.settings")
        if settings.get_attribute("open") is None:
            settings.locator("summary").click()
        self.page.locator(f"#{name}").fill(value)

    def submit(self, prompt: str) -> None:
        self.prompt.fill(prompt)
        self.generate_button.click()

    @property
    def history(self) -> Locator:
        return self.page.locator("#history > li")

    def generate(self, prompt: str) -> str:
        """Generate and wait for the new answer card; returns the variant that answered."""
        generated_before = self.history.count()
        self.submit(prompt)
        expect(self.history).to_have_count(generated_before + 1, timeout=60_000)
        expect(self.error).to_be_hidden()
        return self.field("variant").inner_text().split(" ")[0]

    def vote(self, vote: str) -> None:
        self.vote_button(vote).click()
        expect(self.vote_status).to_have_text(f"Vote saved: {'good' if vote == 'up' else 'bad'}.")
        expect(self.vote_button(vote)).to_have_attribute("aria-pressed", "true")


class DashboardPage:
    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url

    def open(self) -> DashboardPage:
        self.page.goto(f"{self.base_url}dashboard.html")
        self.wait_until_loaded()
        return self

    def reload(self) -> DashboardPage:
        self.page.reload()
        self.wait_until_loaded()
        return self

    def wait_until_loaded(self) -> None:
        expect(self.page.locator("#refresh-button")).to_be_enabled(timeout=60_000)

    def row(self, variant: str) -> Locator:
        return self.page.locator(f'#stats-table tbody tr[data-variant="{variant}"]')

    def category_cells(self, category: str) -> dict[str, str]:
        """The by-category table's row for `category`: column heading -> cell text."""
        table = self.page.locator("#category-table")
        headings = table.locator("thead th").all_text_contents()
        row = table.locator(f'tbody tr[data-category="{category}"]')
        return dict(zip(headings, row.locator("th, td").all_text_contents(), strict=True))

    def counts(self, variant: str) -> VoteCounts:
        """The up and down votes the table shows for a variant (0/0 when it has no row)."""
        row = self.row(variant)
        if row.count() == 0:
            return VoteCounts(0, 0)
        cells = row.locator("td").all_inner_texts()
        # columns after the variant header: traffic, impressions, up, down, ...
        return VoteCounts(up=int(cells[2]), down=int(cells[3]))
