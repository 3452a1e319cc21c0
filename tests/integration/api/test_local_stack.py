"""The API over real HTTP: local gateway → real handlers → SageMaker emulator (smoke models)
→ SQLite store, on one origin with the site."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from local.devstack.stack import LocalStack
from training.artifacts import Artifact

# Small generations keep variant A (SmolLM2-135M even in the smoke profile) quick.
FAST = {"max_new_tokens": 2}


@pytest.fixture
def client(local_stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_stack.url, timeout=60) as http:
        yield http


def stored(database_url: str, generation_id: str) -> dict[str, Any]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            row = (
                connection.execute(
                    sa.text("SELECT * FROM generations WHERE id = :id"), {"id": generation_id}
                )
                .mappings()
                .one()
            )
    finally:
        engine.dispose()
    return dict(row)


def stored_votes(database_url: str, generation_id: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT * FROM votes WHERE generation_id = :id"), {"id": generation_id}
            )
            return [dict(row) for row in rows.mappings()]
    finally:
        engine.dispose()


def test_generate_over_http_answers_the_design_response_and_records_it(
    client: httpx.Client, local_stack: LocalStack, smoke_artifacts: dict[str, Artifact]
) -> None:
    response = client.post(
        "/api/generate",
        json={"prompt": "Markets rally as", "variant": "B", "seed": 3, **FAST},
        headers={"X-User-Id": "integration-reader"},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["variant"] == "B"
    assert body["model"] == {
        "name": "headline-lite",
        "version": smoke_artifacts["headline-lite"].manifest["version"],
    }
    # The classifier answered: a category, or none where it is not confident enough
    assert body["category_confidence"] is not None
    if body["category"] is not None:
        categories = {"business", "entertainment", "politics", "sport", "tech"}
        assert body["category"]["label"] in categories
        assert body["category"]["score"] == body["category_confidence"]
    assert body["latency_ms"]["total"] >= body["latency_ms"]["model"] > 0
    row = stored(local_stack.database_url, body["generation_id"])
    assert (row["variant"], row["text"], row["strategy"]) == ("B", body["text"], "override")


def test_only_the_reader_a_generation_was_served_to_votes_on_it_over_the_same_origin(
    client: httpx.Client, local_stack: LocalStack
) -> None:
    reader = {"X-User-Id": "voter"}
    generated = client.post(
        "/api/generate", json={"prompt": "Vote on me", "variant": "B", **FAST}, headers=reader
    ).json()
    ballot = {
        "generation_id": generated["generation_id"],
        "vote": "up",
        "vote_token": generated["vote_token"],
    }
    # Another reader with the token, the reader without it, and no reader: refused.
    refused = [
        client.post("/api/feedback", json=ballot, headers={"X-User-Id": "stuffer"}),
        client.post("/api/feedback", json={**ballot, "vote_token": None}, headers=reader),
        client.post("/api/feedback", json=ballot),
    ]
    vote = client.post("/api/feedback", json=ballot, headers=reader)

    assert [answer.status_code for answer in refused] == [403, 403, 403]
    assert {answer.json()["error"]["code"] for answer in refused} == {"vote_not_allowed"}
    assert vote.status_code == 200, vote.text
    assert vote.json()["generation_id"] == generated["generation_id"]
    [row] = stored_votes(local_stack.database_url, generated["generation_id"])
    assert row["vote"] == "up"


def test_the_same_user_keeps_the_same_variant_over_http(client: httpx.Client) -> None:
    variants = [
        client.post(
            "/api/generate", json={"prompt": "Sticky", **FAST}, headers={"X-User-Id": "sticky-9"}
        ).json()
        for _ in range(3)
    ]

    assert len({v["variant"] for v in variants}) == 1
    assert {v["strategy"] for v in variants} == {"fixed"}


def test_invalid_input_over_http_is_422_naming_the_field(client: httpx.Client) -> None:
    response = client.post("/api/generate", json={"prompt": "x", "top_p": 1.5})

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "top_p"


def test_an_unknown_api_route_is_a_404_in_the_error_shape(client: httpx.Client) -> None:
    response = client.get("/api/does-not-exist")

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "route_not_found", "message": "No such route"}}


def test_the_site_and_the_openapi_document_share_the_origin(client: httpx.Client) -> None:
    site = client.get("/")
    document = client.get("/api/openapi.json")

    assert site.status_code == 200 and "<html" in site.text.lower()
    assert document.status_code == 200
    assert "/api/generate" in document.json()["paths"]


def test_health_reports_every_endpoint_in_service_and_the_database(client: httpx.Client) -> None:
    health = client.get("/api/health").json()

    assert health == {
        "status": "ok",
        "endpoints": {
            name: {"status": "ok", "detail": None}
            for name in ("generator-A", "generator-B", "classifier")
        },
        "database": {"status": "ok", "detail": None},
    }


def test_a_json_body_sent_as_curl_sends_it_is_read_as_json(client: httpx.Client) -> None:
    # `curl -XPOST .../api/generate -d '{"prompt":"Stocks"}'`: no -H, so curl labels the JSON
    # body application/x-www-form-urlencoded.
    response = client.post(
        "/api/generate",
        content=b'{"prompt": "Stocks", "variant": "B", "max_new_tokens": 2}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["prompt"] == "Stocks"


@pytest.mark.parametrize("path", ["/api/generate", "/api/feedback"])
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "multipart/form-data",  # no boundary: Powertools' multipart parser raised a bare 500
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=x",
        "multipart/mixed",
    ],
)
def test_a_body_of_another_media_type_is_415_naming_the_header(
    client: httpx.Client, path: str, content_type: str
) -> None:
    response = client.post(
        path, content=b"--x\r\nprompt=Stocks", headers={"Content-Type": content_type}
    )

    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert error["details"] == [
        {"field": "Content-Type", "location": "header", "reason": "not application/json"}
    ]
