"""The feedback store on SQLite and on a real PostgreSQL (each test runs on both)."""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pressroom_common.feedback.service import stats_report
from pressroom_common.feedback.store import (
    FeedbackStore,
    GenerationNotFoundError,
    StoreUnavailableError,
    Vote,
    open_store,
)
from pressroom_common.feedback.store.schema import generations, metadata, votes
from pressroom_common.platform.errors import VoteNotAllowed
from pressroom_common.platform.readers import ANONYMOUS_READER

from tests.fixtures.feedback import GenerationFactory
from tests.fixtures.postgres import PostgresServer

USER = "a" * 64  # the reader `make_generation` serves by default
OTHER_USER = "o" * 64


def count_rows(store: FeedbackStore, table: sa.Table) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


# Reflection is not part of the Data API path; the same migrations run on PostgreSQL itself.
@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_migrations_build_exactly_the_schema_the_queries_use(store: FeedbackStore) -> None:
    store.migrate()  # a second upgrade is a no-op
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_recorded_generation_round_trips_and_recording_it_again_changes_nothing(
    store: FeedbackStore, make_generation: GenerationFactory
) -> None:
    record = make_generation(created_at=datetime(2026, 1, 15, 13, 30, tzinfo=UTC))
    store.record_generation(record)
    store.record_generation(record)
    with store.engine.connect() as connection:
        rows = connection.execute(sa.select(generations)).mappings().all()
    assert len(rows) == 1
    assert rows[0]["created_at"] == record.created_at
    assert rows[0]["parameters"] == record.parameters


def test_vote_on_a_generation_is_stored_and_returned(
    store: FeedbackStore, make_generation: GenerationFactory
) -> None:
    store.record_generation(make_generation(id="g1"))
    stored = store.record_vote("g1", USER, Vote.UP)
    assert (stored.generation_id, stored.user_hash, stored.vote) == ("g1", USER, Vote.UP)
    assert stored.created_at == stored.updated_at
    assert stored.created_at.tzinfo is not None


def test_repeating_the_same_vote_is_idempotent(
    store: FeedbackStore, make_generation: GenerationFactory
) -> None:
    store.record_generation(make_generation(id="g1"))
    first = store.record_vote("g1", USER, "up")
    second = store.record_vote("g1", USER, "up")
    assert count_rows(store, votes) == 1
    assert second.created_at == first.created_at
    assert second.updated_at >= first.updated_at
    assert store.variant_counts() == {"A": (1, 1, 0)}


def test_changing_a_vote_replaces_it(
    store: FeedbackStore, make_generation: GenerationFactory
) -> None:
    store.record_generation(make_generation(id="g1"))
    first = store.record_vote("g1", USER, "up")
    changed = store.record_vote("g1", USER, "down")
    assert changed.vote is Vote.DOWN
    assert changed.created_at == first.created_at
    assert changed.updated_at > first.updated_at
    assert store.variant_counts() == {"A": (1, 0, 1)}


@pytest.mark.parametrize("voter", [OTHER_USER, ANONYMOUS_READER])
def test_a_vote_by_anyone_but_the_reader_it_was_served_to_is_refused_and_stores_nothing(
    store: FeedbackStore, make_generation: GenerationFactory, voter: str
) -> None:
    store.record_generation(make_generation(id="g1"))
    store.record_generation(make_generation(id="g-anonymous", user_hash=ANONYMOUS_READER))
    with pytest.raises(VoteNotAllowed) as refused:
        store.record_vote("g1" if voter == OTHER_USER else "g-anonymous", voter, "up")
    assert (refused.value.status, refused.value.field) == (403, "generation_id")
    assert count_rows(store, votes) == 0
    assert store.variant_counts() == {"A": (2, 0, 0)}


def test_vote_on_an_unknown_generation_raises_not_found_and_stores_nothing(
    store: FeedbackStore,
) -> None:
    with pytest.raises(GenerationNotFoundError) as raised:
        store.record_vote("no-such-generation", USER, "up")
    assert raised.value.status == 404
    assert "generation_id" in raised.value.message
    assert count_rows(store, votes) == 0


def test_concurrent_votes_from_many_threads_count_exactly_once(
    store: FeedbackStore, make_generation: GenerationFactory
) -> None:
    users = [f"{index:064d}" for index in range(12)]
    served = [(f"g{index}-{user[-2:]}", user) for index in range(5) for user in users]
    for generation_id, user in served:
        variant = "AB"[int(generation_id[1]) % 2]
        store.record_generation(make_generation(id=generation_id, variant=variant, user_hash=user))
    # Every user votes down then up, twice, on each of their generations, from 16 threads at
    # once: the final state has exactly one vote per generation.
    jobs = [
        (generation_id, user, vote) for generation_id, user in served for vote in ("down", "up")
    ]
    go = threading.Event()

    def vote(job: tuple[str, str, str]) -> None:
        generation_id, user, choice = job
        go.wait(timeout=10)  # the first 16 jobs start together
        store.record_vote(generation_id, user, choice)
        store.record_vote(generation_id, user, "up")

    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(vote, job) for job in jobs]
        go.set()
        for future in futures:
            future.result()
    assert count_rows(store, votes) == len(served)
    assert store.variant_counts() == {"A": (3 * 12, 3 * 12, 0), "B": (2 * 12, 2 * 12, 0)}


def test_stats_window_counts_only_generations_since_the_given_time(
    store: FeedbackStore, make_generation: GenerationFactory
) -> None:
    cutoff = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    store.record_generation(make_generation(id="old", created_at=cutoff - timedelta(days=1)))
    store.record_generation(make_generation(id="new", created_at=cutoff))
    store.record_vote("old", USER, "down")
    store.record_vote("new", USER, "up")
    report = stats_report(store, since=cutoff, weights={"A": 1.0})
    (variant,) = report.variants
    assert (variant.requests, variant.up, variant.down) == (1, 1, 0)
    assert stats_report(store, since=None, weights={"A": 1.0}).variants[0].requests == 2


def test_variant_counts_since_a_rounds_start_count_only_that_rounds_generations(
    store: FeedbackStore, make_generation: GenerationFactory
) -> None:
    # Mid-hour: the start's own hour comes from the raw rows, later hours from the rollup.
    started = datetime(2026, 1, 15, 12, 30, tzinfo=UTC)
    store.record_generation(make_generation(id="before", created_at=started - timedelta(minutes=1)))
    store.record_generation(make_generation(id="at", created_at=started))
    store.record_generation(make_generation(id="later", created_at=started + timedelta(hours=2)))
    store.record_generation(
        make_generation(
            id="later-other", created_at=started + timedelta(hours=2), user_hash=OTHER_USER
        )
    )
    for generation_id in ("before", "at", "later"):
        store.record_vote(generation_id, USER, "up")
    store.record_vote("later-other", OTHER_USER, "down")

    assert store.variant_counts() == {"A": (4, 3, 1)}
    assert store.variant_counts(started) == {"A": (3, 2, 1)}
    assert store.variant_counts(started + timedelta(days=1)) == {}


def test_stats_match_a_hand_computed_example(
    store: FeedbackStore, make_generation: GenerationFactory
) -> None:
    """Variant A: 60 weight-routed requests, one failed, 3 up-votes. Variant B: 40 routed plus
    one pinned by an explicit override, 2 down-votes. Weights 1:1.

    Expected by hand (tolerances: 1e-9 for the quantiles and the p-value, 1e-5 for the
    integrals behind P(best) and the expected loss):
    - A's posterior Beta(4, 1) has CDF x^4, so its 95% interval is [0.025^(1/4), 0.975^(1/4)];
      B's Beta(1, 3) has CDF 1 - (1 - x)^3, so [1 - 0.975^(1/3), 1 - 0.025^(1/3)].
    - P(A best) = 1 - E[Y^4] for Y ~ Beta(1, 3) = 1 - 3 * B(5, 3) = 1 - 1/35.
    - E[max] = 1 - integral of x^4 (1 - (1 - x)^3) = 1 - 1/5 + B(5, 4) = 0.8 + 1/280,
      so the expected loss of A is 1/280 and of B 0.8 + 1/280 - 0.25.
    - SRM: chi-square = 2 * 10^2 / 50 = 4 with 1 degree of freedom, p = erfc(sqrt(2)).
    - Latency (successful only): A's 59 values 1..59 ms give p50 = 30, p95 = 1 + 0.95 * 58.
    """
    for index in range(60):
        store.record_generation(
            make_generation(
                id=f"a{index}",
                variant="A",
                latency_total_ms=float(index + 1),
                error_code="model_timeout" if index == 59 else None,
                text="" if index == 59 else "headline",
            )
        )
    for index in range(41):
        store.record_generation(
            make_generation(
                id=f"b{index}",
                variant="B",
                strategy="override" if index == 40 else "fixed",
                latency_total_ms=10.0,
            )
        )
    for index in range(3):
        store.record_vote(f"a{index}", USER, "up")
    store.record_vote("b0", USER, "down")
    store.record_vote("b1", USER, "down")

    report = stats_report(store, since=None, weights={"A": 1.0, "B": 1.0})

    a, b = report.variants
    assert (a.variant, a.requests, a.impressions, a.errors, a.up, a.down) == ("A", 60, 59, 1, 3, 0)
    assert (b.variant, b.requests, b.impressions, b.errors, b.up, b.down) == ("B", 41, 41, 0, 0, 2)
    assert report.total_requests == 101
    assert a.error_rate == pytest.approx(1 / 60)
    assert a.traffic_share == pytest.approx(60 / 101)
    assert (a.up_rate, b.up_rate) == (1.0, 0.0)
    assert a.up_rate_interval.low == pytest.approx(0.025 ** (1 / 4), abs=1e-9)
    assert a.up_rate_interval.high == pytest.approx(0.975 ** (1 / 4), abs=1e-9)
    assert b.up_rate_interval.low == pytest.approx(1 - 0.975 ** (1 / 3), abs=1e-9)
    assert b.up_rate_interval.high == pytest.approx(1 - 0.025 ** (1 / 3), abs=1e-9)
    assert a.latency_ms.p50 == pytest.approx(30.0)
    assert a.latency_ms.p95 == pytest.approx(1 + 0.95 * 58)
    assert (b.latency_ms.p50, b.latency_ms.p95) == (10.0, 10.0)
    verdict = report.verdict
    assert verdict.probability_best["A"] == pytest.approx(1 - 1 / 35, abs=1e-5)
    assert verdict.probability_best["B"] == pytest.approx(1 / 35, abs=1e-5)
    assert verdict.expected_loss["A"] == pytest.approx(1 / 280, abs=1e-5)
    assert verdict.expected_loss["B"] == pytest.approx(0.8 + 1 / 280 - 0.25, abs=1e-5)
    assert verdict.sample_ratio_mismatch_p_value == pytest.approx(math.erfc(math.sqrt(2)), 1e-9)


def test_stats_of_an_empty_store_report_no_variants(store: FeedbackStore) -> None:
    report = stats_report(store, since=None, weights={"A": 1.0, "B": 1.0})
    assert report.variants == []
    assert report.total_requests == 0
    assert report.verdict.sample_ratio_mismatch_p_value is None


def test_open_store_rejects_an_unsupported_url() -> None:
    with pytest.raises(ValueError, match="unsupported backend"):
        open_store("mysql://localhost/feedback")


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql", "aurora-data-api"], indirect=True)
def test_database_crash_answers_unavailable_and_loses_no_acknowledged_vote(
    postgres_server: PostgresServer, store_url: str, make_generation: GenerationFactory
) -> None:
    store = open_store(store_url, migrate=True)
    readers = [f"{index:064d}" for index in range(20)]
    for reader in readers:
        store.record_generation(make_generation(id=f"g-{reader[-2:]}", user_hash=reader))
    acknowledged = {store.record_vote(f"g-{r[-2:]}", r, "up").user_hash for r in readers}

    postgres_server.stop(mode="immediate")  # a crash: recovery replays the WAL on restart
    try:
        with pytest.raises(StoreUnavailableError) as raised:
            store.record_vote("g-00", readers[0], "down")
        assert raised.value.status == 503
        assert "vote was not stored" in raised.value.message
        with pytest.raises(StoreUnavailableError):
            stats_report(store, since=None, weights={"A": 1.0})
        with pytest.raises(StoreUnavailableError):
            store.ping()
    finally:
        postgres_server.start()

    store.ping()  # the same store recovers: stale pooled connections are replaced
    with store.engine.connect() as connection:
        stored = set(connection.execute(sa.select(votes.c.user_hash)).scalars())
    assert stored == acknowledged
    assert store.variant_counts() == {"A": (20, 20, 0)}
    store.engine.dispose()


def test_voted_generations_hold_each_votes_present_value_and_what_the_reader_saw(
    store: FeedbackStore, make_generation: GenerationFactory
) -> None:
    storm = {"prompt": "Storm warning for", "text": " the coast", "variant": "B"}
    liked = make_generation(**storm, user_hash="reader-1")
    disliked = make_generation(**storm, user_hash="reader-2")
    failed = make_generation(text="", error_code="model_timeout", user_hash="reader-1")
    unvoted = make_generation()
    for record in (liked, disliked, failed, unvoted):
        store.record_generation(record)
    store.record_vote(liked.id, "reader-1", "down")
    store.record_vote(liked.id, "reader-1", "up")  # changed: only the present value counts
    store.record_vote(disliked.id, "reader-2", "down")
    store.record_vote(failed.id, "reader-1", "down")  # a failed answer teaches nothing
    with pytest.raises(VoteNotAllowed):  # refused: never part of the training set
        store.record_vote(disliked.id, "reader-1", "up")

    voted = store.voted_generations()

    assert [(v.generation_id, v.vote.value) for v in voted] == [
        (liked.id, "up"),
        (disliked.id, "down"),
    ]
    assert {(v.prompt, v.text, v.variant, v.model_name, v.model_version) for v in voted} == {
        ("Storm warning for", " the coast", "B", "headline-base", "v1")
    }
