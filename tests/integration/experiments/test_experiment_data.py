"""What the experiment's monitoring and report read: the store's traffic over time (on SQLite and
PostgreSQL) and the per-variant vote metrics of the feedback function."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from pressroom_common.experiment.routing import FixedWeights, Router
from pressroom_common.feedback.store import FeedbackStore, GenerationRecord, open_store

from local.emulate.events import proxy_event
from local.emulate.functions import load_handler
from tests.fixtures.experiments import STARTED_AT, VARIANTS, FakeClock, serve_readers
from tests.fixtures.lambda_context import lambda_context
from tests.fixtures.readers import TEST_READER_KEYS, reader_hash, write_reader_key

FEEDBACK_FUNCTION = Path(__file__).resolve().parents[3] / "apps" / "feedback" / "src" / "feedback"


def test_traffic_over_time_counts_requests_errors_and_votes_per_bucket(
    experiment_store: FeedbackStore,
) -> None:
    clock = FakeClock()
    served = serve_readers(
        Router(FixedWeights(), VARIANTS), experiment_store, 150, seed=8, clock=clock
    )
    experiment_store.record_generation(
        GenerationRecord(
            id="failed-1",
            created_at=STARTED_AT + timedelta(seconds=130),
            user_hash="f" * 64,
            prompt="p",
            text="",
            variant="B",
            model_name="headline-lite",
            model_version="v1",
            strategy="fixed",
            latency_model_ms=0,
            latency_total_ms=5,
            error_code="dependency_timeout",
        )
    )

    buckets = experiment_store.traffic_over_time(60)

    # Readers arrive one per second from 09:00:00: buckets of 60, 60 and 30 readers.
    starts = sorted({bucket.start for bucket in buckets})
    assert starts == [STARTED_AT + timedelta(seconds=s) for s in (0, 60, 120)]
    by_key = {(bucket.start, bucket.variant): bucket for bucket in buckets}
    first_minute_a = served[:60].count("A")
    assert by_key[(STARTED_AT, "A")].requests == first_minute_a
    assert by_key[(STARTED_AT, "B")].requests == 60 - first_minute_a
    assert sum(b.up + b.down for b in buckets) == 150
    assert sum(b.requests for b in buckets) == 151
    last_b = by_key[(STARTED_AT + timedelta(seconds=120), "B")]
    assert last_b.errors == 1 and last_b.model_name == "headline-lite"


def test_a_bucket_must_be_at_least_a_second(experiment_store: FeedbackStore) -> None:
    with pytest.raises(ValueError, match="bucket_s"):
        experiment_store.traffic_over_time(0)


def test_each_vote_emits_a_per_variant_metric_and_each_refused_one_a_count(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    store = open_store(url, migrate=True)
    [variant] = serve_readers(Router(FixedWeights(), VARIANTS), store, 1, seed=1, clock=FakeClock())
    generation_id, reader = "gen-1-000000", "reader-1-0"  # serve_readers' reader 0, seed 1
    handler = load_handler(
        FEEDBACK_FUNCTION,
        "app.handler",
        {
            "DATABASE_URL": url,
            "VARIANT_WEIGHTS": '{"A": 1, "B": 1}',
            "READER_KEY_FILE": str(write_reader_key(tmp_path)),
        },
    )
    capfd.readouterr()

    def vote(token: str | None) -> int:
        body = {"generation_id": generation_id, "vote": "down", "vote_token": token}
        headers = [("Content-Type", "application/json"), ("X-User-Id", reader)]
        event = proxy_event(
            "POST", "/api/feedback", headers=headers, body=json.dumps(body).encode()
        )
        return int(handler(event, lambda_context("feedback"))["statusCode"])

    statuses = [
        vote(TEST_READER_KEYS.vote_token(generation_id, reader_hash(reader))),
        vote("forged"),
    ]

    assert statuses == [200, 403]
    metrics = [
        json.loads(line)
        for line in capfd.readouterr().out.splitlines()
        if line.startswith('{"_aws"') and '"ColdStart"' not in line
    ]
    assert [(m.get("VotesDown"), m.get("variant")) for m in metrics[:1]] == [([1.0], variant)]
    assert [m.get("VotesRefused") for m in metrics[1:]] == [[1.0]]
