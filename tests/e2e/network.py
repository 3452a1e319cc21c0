"""Faked network answers for the failure paths (Playwright routes), in the API's own shapes."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from playwright.sync_api import Route
from pressroom_common.platform.api import error_response
from pressroom_common.platform.errors import DomainError


def error_body(error: type[DomainError], message: str) -> str:
    """The exact body the API answers for `error` (built by the app factory itself)."""
    body = error_response(error.status, error.code, message).body
    assert isinstance(body, str)
    return body


def answer_json(status: HTTPStatus | int, body: str) -> Callable[[Route], None]:
    """A route handler answering every matched request with this JSON; the server never sees it."""

    def fulfil(route: Route) -> None:
        route.fulfill(status=int(status), content_type="application/json", body=body)

    return fulfil
