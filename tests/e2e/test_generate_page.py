"""The generate page in a real Chromium against the local stack (real models, gateway, store)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from pressroom_common.generation.contracts import (
    Category,
    GenerateResponse,
    LatencyMs,
    ModelRef,
)
from pressroom_common.generation.service import headline
from pressroom_common.platform.errors import DependencyUnavailable

from tests.e2e.network import answer_json, error_body
from tests.e2e.pages import MODEL_OF_VARIANT, NEWS_CATEGORIES, GeneratePage, HeldRequests
from tests.fixtures.browser import PHONE_VIEWPORT, save_screenshot, wait_until_nothing_overflows

pytestmark = pytest.mark.browser


@pytest.fixture
def generate_page(page: Page, local_stack: Any) -> GeneratePage:
    return GeneratePage(page, local_stack.url).open()


def test_generating_shows_the_headline_variant_model_category_and_latency(
    generate_page: GeneratePage,
) -> None:
    save_screenshot(generate_page.page, "generate-page-first-load")
    # Given a prompt and a short generation
    generate_page.set_setting("max_new_tokens", "12")

    # When the user generates
    with generate_page.page.expect_response("**/api/generate") as answer:
        variant = generate_page.generate("Markets rally as")

    # Then the card shows, exactly, the headline the API joined (the model's part marked), and
    # who wrote it
    generation = answer.value.json()
    assert generation["headline"] == "Markets rally as" + generation["text"]
    assert generate_page.field("headline").text_content() == generation["headline"]
    assert generate_page.field("text").text_content() == generation["text"]
    assert variant in MODEL_OF_VARIANT
    expect(generate_page.field("model")).to_contain_text(f"{MODEL_OF_VARIANT[variant]} @ ")
    # and the category the classifier named, or plainly that it was not confident enough
    chip = generate_page.field("category")
    assert generation["category_confidence"] is not None, "the classifier answered"
    if generation["category"] is None:
        expect(chip).to_have_text("uncertain")
    else:
        label, score = chip.inner_text().rsplit(" ", 1)
        assert label in NEWS_CATEGORIES
        assert re.fullmatch(r"\d{1,3}%", score)
    expect(generate_page.field("latency")).to_have_text(
        re.compile(r"^\d+ ms total$|^\d+\.\d\d s total$")
    )
    expect(generate_page.field("latency-parts")).to_contain_text("classifier")
    # and the vote buttons are ready, nothing voted yet
    for vote in ("up", "down"):
        expect(generate_page.vote_button(vote)).to_be_enabled()
        expect(generate_page.vote_button(vote)).to_have_attribute("aria-pressed", "false")
    save_screenshot(generate_page.page, "generate-page-with-answer")


@pytest.mark.parametrize(
    ("prompt", "continuation", "shown"),
    [
        pytest.param(
            "Football club", " signs new season", "Football club signs new season", id="new-word"
        ),
        pytest.param("Stock", "s climb", "Stocks climb", id="same-word"),
    ],
)
def test_the_headline_reads_as_one_line_of_text_with_its_spaces(
    generate_page: GeneratePage, prompt: str, continuation: str, shown: str
) -> None:
    # Given the API's answer for a continuation that begins a new word, or goes on with the last
    generation = GenerateResponse(
        generation_id="00000000-0000-4000-8000-000000000001",
        prompt=prompt,
        text=continuation,
        headline=headline(prompt, continuation),
        variant="A",
        model=ModelRef(name="headline-base", version="v1"),
        strategy="weighted",
        category=None,
        latency_ms=LatencyMs(model=1, classifier=None, total=2),
        created_at=datetime.now(UTC),
    )
    body = generation.model_dump_json()
    generate_page.page.route("**/api/generate", answer_json(HTTPStatus.OK, body))

    generate_page.generate(prompt)

    # Then the card, the history and its button read the headline, space included
    assert generate_page.field("headline").text_content() == shown
    assert generate_page.field("text").text_content() == continuation
    entry = generate_page.history.nth(0)
    assert entry.locator('[data-field="headline"]').text_content() == shown
    expect(entry.get_by_role("button")).to_have_attribute("aria-label", f"Show and rate: {shown}")


@pytest.mark.parametrize(
    ("category", "confidence", "chip_text", "muted"),
    [
        pytest.param(Category(label="sport", score=0.93), 0.93, "sport 93%", False, id="labelled"),
        pytest.param(None, 0.41, "uncertain", True, id="abstained"),
        pytest.param(None, None, "no category", True, id="no-classifier"),
    ],
)
def test_the_category_chip_says_plainly_when_the_classifier_is_not_confident(
    generate_page: GeneratePage,
    category: Category | None,
    confidence: float | None,
    chip_text: str,
    muted: bool,
) -> None:
    # Given the API's answer: a category, an abstention (no category, a confidence below the
    # threshold), or no classifier answer at all
    generation = GenerateResponse(
        generation_id="00000000-0000-4000-8000-000000000002",
        prompt="Parliament votes on",
        text=" the budget",
        headline="Parliament votes on the budget",
        variant="A",
        model=ModelRef(name="headline-base", version="v1"),
        strategy="weighted",
        category=category,
        category_confidence=confidence,
        latency_ms=LatencyMs(model=1, classifier=None if confidence is None else 1, total=2),
        created_at=datetime.now(UTC),
    )
    generate_page.page.route(
        "**/api/generate", answer_json(HTTPStatus.OK, generation.model_dump_json())
    )

    generate_page.generate("Parliament votes on")

    # Then the chip names the category only when the classifier was confident, and is muted
    # otherwise; the history says the same
    chip = generate_page.field("category")
    expect(chip).to_have_text(chip_text)
    if muted:
        expect(chip).to_have_class(re.compile(r"\bis-none\b"))
    else:
        expect(chip).not_to_have_class(re.compile(r"\bis-none\b"))
    if category is None and confidence is not None:
        expect(chip).to_have_class(re.compile(r"\bis-uncertain\b"))
        expect(chip).to_have_attribute("title", re.compile(r"not confident enough.*41%"))
    summary = generate_page.history.nth(0).locator('[data-field="summary"]')
    expect(summary).to_contain_text(chip_text)


def test_a_history_saved_before_headlines_were_answered_is_dropped(
    generate_page: GeneratePage,
) -> None:
    page = generate_page.page
    legacy = {"generation": {"generation_id": "old", "prompt": "Stocks", "text": "rise"}}
    page.evaluate(
        "entry => sessionStorage.setItem('pressroom.history', JSON.stringify([entry]))", legacy
    )

    page.reload()

    expect(page.locator("#history-empty")).to_be_visible()
    expect(generate_page.history).to_have_count(0)
    expect(generate_page.card).to_have_count(0)


def test_the_generate_button_is_busy_while_the_request_runs(generate_page: GeneratePage) -> None:
    page = generate_page.page
    sent: list[str] = []
    page.on(
        "request",
        lambda request: sent.append(request.url) if "/api/generate" in request.url else None,
    )
    held = HeldRequests(page, "**/api/generate")

    generate_page.submit("Parliament votes on")

    expect(generate_page.generate_button).to_be_disabled()
    expect(generate_page.generate_button).to_have_text("Generating…")
    expect(page.locator("#generate-form")).to_have_attribute("aria-busy", "true")
    generate_page.prompt.press("Control+Enter")  # the keyboard shortcut must not send twice
    held.release()
    expect(generate_page.generate_button).to_be_enabled(timeout=60_000)
    expect(generate_page.generate_button).to_have_text("Generate")
    expect(generate_page.card).to_be_visible()
    assert len(sent) == 1


def test_every_request_carries_the_same_per_browser_user_id(generate_page: GeneratePage) -> None:
    page = generate_page.page
    with page.expect_request("**/api/generate") as first:
        generate_page.generate("Storm hits")
    page.reload()
    with page.expect_request("**/api/generate") as second:
        generate_page.generate("Storm hits again")

    stored = page.evaluate("() => localStorage.getItem('pressroom.userId')")
    assert stored and len(stored) >= 32
    assert first.value.headers["x-user-id"] == stored
    assert second.value.headers["x-user-id"] == stored


def test_out_of_range_settings_are_named_and_nothing_is_sent(generate_page: GeneratePage) -> None:
    page = generate_page.page
    sent: list[str] = []
    page.on(
        "request",
        lambda request: sent.append(request.url) if "/api/generate" in request.url else None,
    )
    generate_page.set_setting("temperature", "0")
    generate_page.set_setting("top_k", "500")

    generate_page.submit("Markets rally as")

    expect(page.locator("#temperature-error")).to_have_text(
        "Temperature must be above 0 and at most 2."
    )
    expect(page.locator("#top_k-error")).to_have_text("Top-k must be at least 0 and at most 200.")
    expect(page.locator("#temperature")).to_have_attribute("aria-invalid", "true")
    expect(generate_page.error).to_be_visible()
    assert sent == []


def test_the_settings_bounds_and_defaults_are_the_apis_own(page: Page, local_stack: Any) -> None:
    # The API's own document with a tighter bound and another default: the page must follow it.
    document = httpx.get(f"{local_stack.url}api/openapi.json", timeout=30).json()
    properties = document["components"]["schemas"]["GenerateRequest"]["properties"]
    properties["max_new_tokens"].update(maximum=10, default=7)
    page.route("**/api/openapi.json", answer_json(HTTPStatus.OK, json.dumps(document)))
    generate_page = GeneratePage(page, local_stack.url).open()

    expect(page.locator("#max_new_tokens")).to_have_value("7")
    expect(page.locator("#max_new_tokens-hint")).to_have_text("1 to 10")
    expect(page.locator("#temperature-hint")).to_have_text("above 0, at most 2")
    expect(page.locator("#top_k-hint")).to_have_text("0 to 200 (0 = off)")
    expect(page.locator("#prompt-max")).to_have_text("500")
    generate_page.set_setting("max_new_tokens", "11")
    generate_page.submit("Markets rally as")
    expect(page.locator("#max_new_tokens-error")).to_have_text(
        "Max new tokens must be at least 1 and at most 10."
    )


def test_an_empty_prompt_is_refused_in_words(generate_page: GeneratePage) -> None:
    generate_page.submit("   ")

    expect(generate_page.page.locator("#prompt-error")).to_have_text("Enter a prompt.")
    expect(generate_page.prompt).to_be_focused()


UNAVAILABLE = error_body(DependencyUnavailable, "The headline model is unavailable right now")


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        pytest.param(
            answer_json(HTTPStatus.SERVICE_UNAVAILABLE, UNAVAILABLE),
            "The headline model is unavailable right now",
            id="api-error-body",
        ),
        pytest.param(
            lambda route: route.fulfill(
                status=502, content_type="text/html", body="<h1>Bad Gateway</h1>"
            ),
            "A model or the database answered with an error. Try again.",
            id="proxy-html-page",
        ),
        pytest.param(
            lambda route: route.abort("connectionrefused"),
            "Could not reach the Pressroom API. Check your connection and try again.",
            id="network-down",
        ),
    ],
)
def test_a_failed_generation_is_explained_and_the_form_recovers(
    generate_page: GeneratePage, answer: Any, shown: str
) -> None:
    # Given the API fails (faked at the network: the page cannot tell the difference)
    generate_page.page.route("**/api/generate", answer)

    generate_page.submit("Markets rally as")

    expect(generate_page.error).to_have_text(shown)
    expect(generate_page.error).to_have_attribute("role", "alert")
    expect(generate_page.generate_button).to_be_enabled()
    expect(generate_page.card).to_have_count(0)
    if "api-error" in shown or shown.startswith("The headline"):
        save_screenshot(generate_page.page, "generate-page-api-error")


def test_validation_details_from_the_api_mark_the_named_field(generate_page: GeneratePage) -> None:
    # The page checks the same bounds first; a 422 from the API must still land on its field.
    body = json.dumps(
        {
            "error": {
                "code": "validation_error",
                "message": "Invalid request: top_p: Input should be less than or equal to 1",
                "details": [
                    {
                        "field": "top_p",
                        "location": "body",
                        "reason": "Input should be less than or equal to 1",
                    }
                ],
            }
        }
    )
    generate_page.page.route("**/api/generate", answer_json(HTTPStatus.UNPROCESSABLE_ENTITY, body))

    generate_page.submit("Markets rally as")

    expect(generate_page.page.locator("#top_p-error")).to_have_text(
        "Input should be less than or equal to 1"
    )
    expect(generate_page.page.locator("#top_p")).to_have_attribute("aria-invalid", "true")
    expect(generate_page.error).to_contain_text("top_p")


def test_the_session_history_lists_generations_and_votes_and_survives_a_reload(
    generate_page: GeneratePage,
) -> None:
    generate_page.generate("Election results")
    generate_page.vote("up")
    generate_page.generate("Cup final")

    expect(generate_page.history).to_have_count(2)
    expect(generate_page.history.nth(0)).to_contain_text("Cup final")
    expect(generate_page.history.nth(0)).to_contain_text("not voted")
    expect(generate_page.history.nth(1)).to_contain_text("Election results")
    expect(generate_page.history.nth(1)).to_contain_text("voted good")

    generate_page.page.reload()
    expect(generate_page.history).to_have_count(2)
    # "Show" brings an earlier headline back with its stored vote
    generate_page.history.nth(1).get_by_role("button").click()
    expect(generate_page.field("prompt")).to_have_text("Election results")
    expect(generate_page.vote_button("up")).to_have_attribute("aria-pressed", "true")


def test_keyboard_alone_can_generate_and_vote(generate_page: GeneratePage) -> None:
    page = generate_page.page
    generate_page.prompt.focus()
    page.keyboard.type("Scientists discover")
    page.keyboard.press("Control+Enter")
    expect(generate_page.card).to_be_visible(timeout=60_000)

    generate_page.vote_button("up").focus()
    page.keyboard.press("Tab")
    expect(generate_page.vote_button("down")).to_be_focused()
    page.keyboard.press("Space")
    expect(generate_page.vote_button("down")).to_have_attribute("aria-pressed", "true")


def test_the_page_fits_a_phone_screen(generate_page: GeneratePage) -> None:
    page = generate_page.page
    page.set_viewport_size(PHONE_VIEWPORT)
    save_screenshot(page, "generate-page-first-load-phone")
    generate_page.generate("Markets rally as " + "very " * 40)

    wait_until_nothing_overflows(page)
    save_screenshot(page, "generate-page-phone")
