"""Local proxy events have the shape of `sam local generate-event apigateway aws-proxy`."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from local.emulate.events import proxy_event


@pytest.fixture
def aws_proxy_event() -> dict[str, Any]:
    """The event `sam local generate-event apigateway aws-proxy` prints (checked in as data)."""
    return json.loads((Path(__file__).parent / "data" / "aws-proxy-event.json").read_text())


def key_paths(value: Any, prefix: str = "") -> set[str]:
    if not isinstance(value, dict):
        return set()
    paths = set()
    for key, item in value.items():
        path = f"{prefix}.{key}" if prefix else key
        paths.add(path)
        if key not in {
            "headers",
            "multiValueHeaders",
            "queryStringParameters",
            "multiValueQueryStringParameters",
            "pathParameters",
            "stageVariables",
        }:
            paths |= key_paths(item, path)
    return paths


def test_event_has_every_field_of_the_sam_event(aws_proxy_event: dict[str, Any]) -> None:
    event = proxy_event(
        "POST", "/api/generate", headers=[("Content-Type", "application/json")], body=b"{}"
    )

    assert key_paths(aws_proxy_event) <= key_paths(event)


def test_repeated_headers_and_query_values_are_all_kept() -> None:
    event = proxy_event(
        "GET",
        "/api/stats",
        headers=[("X-A", "1"), ("X-A", "2")],
        query=[("since", "a"), ("since", "b")],
    )

    assert event["multiValueHeaders"]["X-A"] == ["1", "2"]
    assert event["headers"]["X-A"] == "2"
    assert event["multiValueQueryStringParameters"] == {"since": ["a", "b"]}
    assert event["queryStringParameters"] == {"since": "b"}


def test_bodies_of_the_apis_binary_media_types_are_base64_encoded() -> None:
    event = proxy_event(
        "POST",
        "/x",
        headers=[("Content-Type", "image/png")],
        body=b"\x89PNG",
        binary_media_types=["image/*"],
    )

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x89PNG"


def test_other_bodies_reach_the_handler_as_text() -> None:
    event = proxy_event("POST", "/x", headers=[("Content-Type", "image/png")], body=b"abc")

    assert (event["isBase64Encoded"], event["body"]) == (False, "abc")


def test_stage_prefixes_the_request_context_path() -> None:
    event = proxy_event("GET", "/api/health", stage="dev")

    assert event["requestContext"]["path"] == "/dev/api/health"
    assert event["body"] is None and event["queryStringParameters"] is None
