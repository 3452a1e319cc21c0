"""A simulated reader waits and asks again when the API throttles it, as any client should."""

from __future__ import annotations

import httpx
import pytest

from local.experiment import simulate


def client_answering(*statuses: int) -> tuple[httpx.Client, list[int]]:
    calls: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(len(calls))
        return httpx.Response(statuses[min(len(calls) - 1, len(statuses) - 1)])

    return httpx.Client(transport=httpx.MockTransport(answer), base_url="http://api"), calls


def test_a_throttled_request_is_sent_again_until_it_is_let_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(simulate, "THROTTLED_FIRST_WAIT_S", 0.0)
    client, calls = client_answering(429, 429, 200)
    assert simulate._send(client, "GET", "api/stats").status_code == 200
    assert len(calls) == 3


def test_a_request_throttled_every_time_gives_up_after_a_bounded_number_of_tries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(simulate, "THROTTLED_FIRST_WAIT_S", 0.0)
    client, calls = client_answering(429)
    assert simulate._send(client, "GET", "api/stats").status_code == 429
    assert len(calls) == simulate.THROTTLED_RETRIES


def test_other_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simulate, "THROTTLED_FIRST_WAIT_S", 0.0)
    client, calls = client_answering(503, 200)
    assert simulate._send(client, "POST", "api/generate").status_code == 503
    assert len(calls) == 1
