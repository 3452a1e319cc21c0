"""The feedback Lambda handler driven with API Gateway proxy events, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pressroom_common.feedback.settings import FeedbackSettings
from pressroom_common.feedback.store import open_store
from pressroom_common.wiring import build_feedback_app

from local.emulate.events import proxy_event
from local.emulate.functions import load_handler
from qa.reliability.stuffing import stuffing_attempts
from tests.fixtures.feedback import GenerationFactory
from tests.fixtures.lambda_context import lambda_context
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.readers import TEST_READER_KEYS, reader_hash, write_reader_key

FUNCTION_DIR = Path(__file__).resolve().parents[3] / "apps" / "feedback" / "src" / "feedback"
WEIGHTS = '{"A": 1, "B": 1}'

Call = Callable[..., tuple[int, dict[str, Any]]]
# The reader every recorded generation was served to.
READER = "reader-1"
# What Lambda passes as `context`: the fields the handler's Powertools decorators read.


def invoke(handler: Any, method: str, path: str, **options: Any) -> tuple[int, dict[str, Any]]:
    """Send one request through the handler; return (status, parsed JSON body)."""
    body = options.pop("json", None)
    headers = list(options.pop("headers", ()))
    if body is not None:
        headers.append(("Content-Type", "application/json"))
        options["body"] = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = handler(
        proxy_event(method, path, headers=headers, **options), lambda_context("feedback")
    )
    return response["statusCode"], json.loads(response["body"])


def feedback_handler(store_url: str, key_directory: Path, **environment: str) -> Any:
    """The feedback function with the template's variables and the test reader key."""
    return load_handler(
        FUNCTION_DIR,
        "app.handler",
        {
            "DATABASE_URL": store_url,
            "VARIANT_WEIGHTS": WEIGHTS,
            "READER_KEY_FILE": str(write_reader_key(key_directory)),
            **environment,
        },
    )


@pytest.fixture
def call(store_url: str, tmp_path: Path) -> Call:
    open_store(store_url, migrate=True).engine.dispose()
    handler = feedback_handler(store_url, tmp_path)
    return lambda method, path, **options: invoke(handler, method, path, **options)


def ballot(generation_id: str, vote: str, reader: str | None = READER) -> dict[str, Any]:
    """`call` options for a vote by `reader` with the token their generate response carried."""
    token = TEST_READER_KEYS.vote_token(generation_id, reader_hash(reader))
    headers = [("X-User-Id", reader)] if reader else []
    return {
        "json": {"generation_id": generation_id, "vote": vote, "vote_token": token},
        "headers": headers,
    }


@pytest.fixture
def recorded(store_url: str, make_generation: GenerationFactory) -> list[str]:
    store = open_store(store_url)
    ids = ["g-a", "g-b"]
    served_to = reader_hash(READER)
    store.record_generation(make_generation(id="g-a", variant="A", user_hash=served_to))
    store.record_generation(make_generation(id="g-b", variant="B", user_hash=served_to))
    store.engine.dispose()
    return ids


def test_vote_answers_the_stored_vote(call: Call, recorded: list[str]) -> None:
    status, body = call("POST", "/api/feedback", **ballot("g-a", "up"))
    assert status == 200
    assert (body["generation_id"], body["vote"]) == ("g-a", "up")
    assert body["created_at"] == body["updated_at"]
    assert "user_hash" not in body


def test_voting_again_replaces_the_vote(call: Call, recorded: list[str], store_url: str) -> None:
    _, first = call("POST", "/api/feedback", **ballot("g-a", "up"))
    status, second = call("POST", "/api/feedback", **ballot("g-a", "down"))
    assert status == 200
    assert second["vote"] == "down"
    assert second["created_at"] == first["created_at"]
    assert second["updated_at"] > first["updated_at"]
    store = open_store(store_url)
    assert store.variant_counts()["A"] == (1, 0, 1)
    assert store.record_vote("g-a", reader_hash(READER), "down").vote == "down"


def test_vote_on_an_unknown_generation_answers_404(call: Call, recorded: list[str]) -> None:
    status, body = call("POST", "/api/feedback", **ballot("nope", "up"))
    assert status == 404
    assert body["error"]["code"] == "generation_not_found"
    assert "generation_id" in body["error"]["message"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"generation_id": "g-a", "vote": "sideways"}, "vote"),
        ({"vote": "up"}, "generation_id"),
        ({"generation_id": "   ", "vote": "up"}, "generation_id"),
        ({"generation_id": "g-a", "vote": "up", "extra": 1}, "extra"),
    ],
)
def test_bad_vote_answers_422_naming_the_field(
    call: Call, recorded: list[str], payload: dict[str, Any], field: str
) -> None:
    status, body = call("POST", "/api/feedback", json=payload)
    assert status == 422
    assert field in [detail["field"] for detail in body["error"]["details"]]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
HOSTILE_BODIES = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries(
        {
            "generation_id": JSON_VALUES | st.text(max_size=200),
            "vote": JSON_VALUES | st.sampled_from(["up", "down", "UP", ""]),
        }
    ),
)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=HOSTILE_BODIES)
def test_hostile_vote_bodies_never_answer_5xx_nor_store_a_partial_vote(
    call: Call, recorded: list[str], store_url: str, body: object
) -> None:
    status, answer = call("POST", "/api/feedback", json=json.dumps(body).encode())
    assert status in (403, 404, 422), answer
    assert set(answer) == {"error"}
    store = open_store(store_url)
    stored_votes = sum(up + down for _, up, down in store.variant_counts().values())
    store.engine.dispose()
    # No body without the reader's identity and token casts a vote, however many requests.
    assert stored_votes == 0


def test_malformed_json_answers_422(call: Call, recorded: list[str]) -> None:
    status, body = call("POST", "/api/feedback", json=b"{not json")
    assert status == 422
    assert body["error"]["code"] == "validation_error"


def test_stats_report_votes_per_variant(call: Call, recorded: list[str]) -> None:
    call("POST", "/api/feedback", **ballot("g-a", "up"))
    call("POST", "/api/feedback", **ballot("g-b", "down"))
    status, body = call("GET", "/api/stats")
    assert status == 200
    by_variant = {item["variant"]: item for item in body["variants"]}
    assert (by_variant["A"]["up"], by_variant["A"]["down"]) == (1, 0)
    assert (by_variant["B"]["up"], by_variant["B"]["down"]) == (0, 1)
    assert body["verdict"]["weights"] == {"A": 1.0, "B": 1.0}
    assert set(body["verdict"]["probability_best"]) == {"A", "B"}


def test_stats_since_filters_and_treats_a_naive_time_as_utc(
    call: Call, recorded: list[str]
) -> None:
    # The recorded generations were created at 2026-01-15T12:00Z.
    status, body = call("GET", "/api/stats", query=[("since", "2026-01-15T12:00:01")])
    assert status == 200
    assert body["variants"] == []
    assert body["since"].startswith("2026-01-15T12:00:01")
    _, body = call("GET", "/api/stats", query=[("since", "2026-01-15T11:00:00+00:00")])
    assert body["total_requests"] == 2


def test_stats_default_to_the_experiment_round_and_an_explicit_since_still_wins(
    call: Call,
    store_url: str,
    recorded: list[str],
    make_generation: GenerationFactory,
    tmp_path: Path,
) -> None:
    # The recorded generations were created at 2026-01-15T12:00Z; the round starts an hour later.
    store = open_store(store_url)
    later = datetime(2026, 1, 15, 13, 30, tzinfo=UTC)
    store.record_generation(make_generation(id="g-round", variant="B", created_at=later))
    store.engine.dispose()
    handler = feedback_handler(store_url, tmp_path, EXPERIMENT_STARTED_AT="2026-01-15T13:00:00Z")

    _, this_round = invoke(handler, "GET", "/api/stats")
    _, everything = invoke(handler, "GET", "/api/stats", query=[("since", "2026-01-01T00:00:00")])
    _, without_a_round = call("GET", "/api/stats")

    assert this_round["since"].startswith("2026-01-15T13:00:00")
    assert [(v["variant"], v["requests"]) for v in this_round["variants"]] == [("B", 1)]
    assert everything["total_requests"] == without_a_round["total_requests"] == 3
    assert without_a_round["since"] is None


def test_stats_with_a_bad_since_answers_422_naming_it(call: Call) -> None:
    status, body = call("GET", "/api/stats", query=[("since", "last tuesday")])
    assert status == 422
    assert [detail["field"] for detail in body["error"]["details"]] == ["since"]


def test_openapi_documents_both_routes_and_the_stats_model(store_url: str, tmp_path: Path) -> None:
    settings = FeedbackSettings(
        database_url=store_url,
        variant_weights=json.loads(WEIGHTS),
        reader_key_file=str(write_reader_key(tmp_path)),
    )
    schema = build_feedback_app(settings).get_openapi_schema().model_dump(by_alias=True)
    assert {"/api/feedback", "/api/stats"} <= set(schema["paths"])
    components = schema["components"]["schemas"]
    assert {"StatsReport", "VariantStats", "FeedbackRequest", "FeedbackResponse"} <= set(components)
    # The verdict by category, every field described.
    assert "by_category" in components["StatsReport"]["required"]
    category = components["CategoryStats"]
    assert set(category["properties"]) == {
        "category",
        "variants",
        "verdict",
        "disagrees_with_overall",
    }
    assert "uncategorised" in category["properties"]["category"]["description"]
    assert "leader" in category["properties"]["disagrees_with_overall"]["description"]
    verdict = components["CategoryVerdict"]["properties"]
    assert {"decision", "leader", "probability_best", "votes_needed"} <= set(verdict)
    assert all(field.get("description") for field in verdict.values())
    assert {"impressions", "up", "down", "up_rate"} <= set(
        components["CategoryVariantStats"]["properties"]
    )
    (since,) = [
        p for p in schema["paths"]["/api/stats"]["get"]["parameters"] if p["name"] == "since"
    ]
    assert "Default: the start of the current experiment round" in since["description"]


@pytest.mark.postgres
def test_database_down_answers_503_and_the_vote_is_not_stored(
    postgres_server: PostgresServer,
    postgres_url: str,
    make_generation: GenerationFactory,
    tmp_path: Path,
) -> None:
    store = open_store(postgres_url, migrate=True)
    store.record_generation(make_generation(id="g-a", user_hash=reader_hash(READER)))
    handler = feedback_handler(postgres_url, tmp_path)
    assert invoke(handler, "POST", "/api/feedback", **ballot("g-a", "up"))[0] == 200

    postgres_server.stop()
    try:
        status, body = invoke(handler, "POST", "/api/feedback", **ballot("g-a", "down"))
        stats_status, _ = invoke(handler, "GET", "/api/stats")
    finally:
        postgres_server.start()

    assert status == 503
    assert body["error"]["code"] == "database_unavailable"
    assert stats_status == 503
    assert store.variant_counts() == {"A": (1, 1, 0)}
    store.engine.dispose()


def test_only_the_reader_a_headline_was_served_to_can_vote_on_it(
    call: Call, recorded: list[str], store_url: str
) -> None:
    token = TEST_READER_KEYS.vote_token("g-a", reader_hash(READER))
    attempts = stuffing_attempts(READER, "g-a", token, "g-b")

    answers = [
        call("POST", "/api/feedback", json=attempt.body, headers=list(attempt.headers.items()))
        for attempt in attempts
    ]

    assert len(attempts) == 45
    assert {status for status, _ in answers} == {403}
    assert {body["error"]["code"] for _, body in answers} == {"vote_not_allowed"}
    assert {body["error"]["details"][0]["field"] for _, body in answers} == {
        "vote_token",
        "X-User-Id",
    }
    _, stats = call("GET", "/api/stats")
    assert [(v["up"], v["down"]) for v in stats["variants"]] == [(0, 0), (0, 0)]
    store = open_store(store_url)
    with store.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM votes")).scalar() == 0
    assert store.voted_generations() == []  # nothing refused reaches the retraining set

    # The reader's own vote counts, once, however often it is sent.
    for _ in range(3):
        assert call("POST", "/api/feedback", **ballot("g-a", "up"))[0] == 200
    _, stats = call("GET", "/api/stats")
    assert {v["variant"]: (v["up"], v["down"]) for v in stats["variants"]} == {
        "A": (1, 0),
        "B": (0, 0),
    }
    assert [(v.generation_id, v.vote) for v in store.voted_generations()] == [("g-a", "up")]
    store.engine.dispose()
