"""Hostile and malformed requests through the gateway: 4xx with a clear message, nothing stored."""

from __future__ import annotations

import httpx
import pytest

from local.devstack.stack import LocalStack
from qa.reliability.hostile import (
    HOSTILE_REQUESTS,
    HostileRequest,
    hostile_requests,
    injection_round_trip,
    send,
)


@pytest.mark.parametrize("request_", HOSTILE_REQUESTS, ids=lambda request: request.name)
def test_each_hostile_request_gets_its_4xx_naming_the_field(
    local_stack: LocalStack, request_: HostileRequest
) -> None:
    with httpx.Client(base_url=local_stack.url, timeout=120) as client:
        answer = send(client, request_)

    assert answer.status == request_.status, answer
    assert answer.message, "the error says what is wrong"
    if request_.field is not None:
        assert request_.field in answer.fields


def test_rejected_requests_leave_the_store_as_it_was(local_stack: LocalStack) -> None:
    expectations = hostile_requests(local_stack.url, local_stack.database_url)

    assert [e for e in expectations if not e.held] == []


def test_injection_strings_as_prompts_are_stored_verbatim(local_stack: LocalStack) -> None:
    outcome = injection_round_trip(local_stack.url, local_stack.database_url)

    assert outcome.held, outcome.evidence


def test_the_smallest_positive_temperature_is_served(local_stack: LocalStack) -> None:
    response = httpx.post(
        f"{local_stack.url}api/generate",
        json={"prompt": "Cold", "variant": "B", "max_new_tokens": 2, "temperature": 5e-324},
        timeout=60,
    )

    assert response.status_code == 200, response.text
