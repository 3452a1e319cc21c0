"""The hourly rollups behind statistics, on SQLite, PostgreSQL and PostgreSQL through the Data
API: they always equal the raw rows, their backfills equal their incremental upkeep, and the
statistics read from them (counts, `since` windows, p50/p95, the counts by category) equal a
full computation over the raw rows."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from pressroom_common.experiment.report import UNCATEGORISED, judge
from pressroom_common.experiment.settings import WEIGHTED_STRATEGY
from pressroom_common.experiment.statistics import percentile
from pressroom_common.feedback.service import stats_report
from pressroom_common.feedback.store import (
    FeedbackStore,
    GenerationNotFoundError,
    GenerationRecord,
    open_store,
)
from pressroom_common.feedback.store.migrations import alembic_config
from pressroom_common.feedback.store.rollup import (
    LATENCY_BOUNDS_MS,
    CategoryKey,
    RollupKey,
    category_key,
    latency_bucket,
    latency_bucket_sql,
    rebuild,
    rollup_key,
)
from pressroom_common.feedback.store.schema import (
    generations,
    hourly_category_rollup,
    hourly_rollup,
    votes,
)

from benchmarks.stats import store_answer as reported
from tests.fixtures.feedback import GenerationFactory, vote_row

START = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
Votes = dict[tuple[str, str], str]
"""(generation id, user) → the vote that stands."""
Counts = tuple[int, int, int, int, int]
"""requests, errors, weighted requests, up, down."""
CategoryCounts = tuple[int, int, int, int]
"""requests, errors, up, down."""
# The classifier's labels, and None: it abstained, or did not answer.
LABELS = ("business", "sport", None, "tech", "politics")


def mixed_generations(make_generation: GenerationFactory, count: int) -> list[GenerationRecord]:
    """Two variants over four hours; failures, overrides, and latencies from 0 ms past the
    largest bucket bound, some on the bounds themselves."""
    rng = random.Random(count)
    latencies = [0.0, 0.05, LATENCY_BOUNDS_MS[100], LATENCY_BOUNDS_MS[-1] * 2]
    records = []
    for index in range(count):
        failed = index % 7 == 3
        records.append(
            make_generation(
                id=f"g{index:04d}",
                variant="AB"[index % 2],
                created_at=START + timedelta(seconds=rng.uniform(0, 4 * 3600)),
                latency_total_ms=(
                    latencies[index % 4] if index % 5 == 0 else rng.lognormvariate(4.5, 0.8)
                ),
                strategy="override" if index % 6 == 1 else WEIGHTED_STRATEGY,
                error_code="model_timeout" if failed else None,
                text="" if failed else "headline",
                category_label=None if failed else LABELS[index % len(LABELS)],
            )
        )
    return records


def cast_votes(store: FeedbackStore, records: list[GenerationRecord]) -> Votes:
    """New votes, repeated votes, and votes changed up→down and down→up, each by the reader the
    generation was served to; returns the final ones."""
    standing: Votes = {}
    for index, record in enumerate(records):
        sequence = ["up", "down"][: index % 3]
        if index % 4 == 0:
            sequence += ["down", "down"]
        if index % 5 == 0:
            sequence += ["up", "up"]
        for vote in sequence:
            store.record_vote(record.id, record.user_hash, vote)
            standing[record.id, record.user_hash] = vote
    return standing


def expected_rollup(records: list[GenerationRecord], standing: Votes) -> dict[RollupKey, Counts]:
    counts: dict[RollupKey, Counter[str]] = defaultdict(Counter)
    by_id = {record.id: record for record in records}
    for record in records:
        row = counts[rollup_key(record.created_at, record.variant, record.latency_total_ms)]
        row["requests"] += 1
        row["errors"] += record.error_code is not None
        row["weighted"] += record.strategy == WEIGHTED_STRATEGY
    for (generation_id, _), vote in standing.items():
        record = by_id[generation_id]
        counts[rollup_key(record.created_at, record.variant, record.latency_total_ms)][vote] += 1
    return {
        key: (row["requests"], row["errors"], row["weighted"], row["up"], row["down"])
        for key, row in counts.items()
    }


def expected_category_rollup(
    records: list[GenerationRecord], standing: Votes
) -> dict[CategoryKey, CategoryCounts]:
    counts: dict[CategoryKey, Counter[str]] = defaultdict(Counter)
    by_id = {record.id: record for record in records}
    for record in records:
        row = counts[category_key(record.created_at, record.category_label, record.variant)]
        row["requests"] += 1
        row["errors"] += record.error_code is not None
    for (generation_id, _), vote in standing.items():
        record = by_id[generation_id]
        counts[category_key(record.created_at, record.category_label, record.variant)][vote] += 1
    return {
        key: (row["requests"], row["errors"], row["up"], row["down"]) for key, row in counts.items()
    }


def expected_by_category(
    records: list[GenerationRecord], standing: Votes, since: datetime | None
) -> dict[str, dict[str, tuple[int, int, int]]]:
    """category -> variant -> (impressions, up, down) in the window, from the records alone,
    every variant of the window in every category."""
    window = [r for r in records if since is None or r.created_at >= since]
    by_id = {record.id: record for record in window}
    variants = {record.variant for record in window}
    counts: dict[str, dict[str, Counter[str]]] = defaultdict(
        lambda: {variant: Counter() for variant in variants}
    )
    for record in window:
        counts[record.category_label or UNCATEGORISED][record.variant]["impressions"] += (
            record.error_code is None
        )
    for (generation_id, _), vote in standing.items():
        if generation_id in by_id:
            record = by_id[generation_id]
            counts[record.category_label or UNCATEGORISED][record.variant][vote] += 1
    return {
        category: {
            variant: (row["impressions"], row["up"], row["down"])
            for variant, row in by_variant.items()
        }
        for category, by_variant in counts.items()
    }


def reported_by_category(
    store: FeedbackStore, since: datetime | None
) -> dict[str, dict[str, tuple[int, int, int]]]:
    return {
        item.category: {row.variant: (row.impressions, row.up, row.down) for row in item.variants}
        for item in stats_report(store, since=since, weights={"A": 1, "B": 1}).by_category
    }


def expected_stats(
    records: list[GenerationRecord], standing: Votes, since: datetime | None
) -> dict[str, tuple[int, int, int, int, float | None, float | None]]:
    """Per variant in the window, from the records alone: requests, errors, up, down, and the
    latency p50/p95 by `statistics.percentile`."""
    window = [r for r in records if since is None or r.created_at >= since]
    by_id = {record.id: record for record in window}
    answer = {}
    for variant in sorted({record.variant for record in window}):
        mine = [record for record in window if record.variant == variant]
        latencies = [record.latency_total_ms for record in mine if record.error_code is None]
        cast = Counter(
            vote
            for (generation_id, _), vote in standing.items()
            if generation_id in by_id and by_id[generation_id].variant == variant
        )
        answer[variant] = (
            len(mine),
            len(mine) - len(latencies),
            cast["up"],
            cast["down"],
            percentile(latencies, 0.5) if latencies else None,
            percentile(latencies, 0.95) if latencies else None,
        )
    return answer


def rollup_rows(connection: sa.Connection) -> dict[RollupKey, Counts]:
    return {
        (row.hour, row.variant, row.latency_bucket): (
            row.requests,
            row.errors,
            row.weighted_requests,
            row.up,
            row.down,
        )
        for row in connection.execute(sa.select(hourly_rollup))
    }


def category_rollup_rows(connection: sa.Connection) -> dict[CategoryKey, CategoryCounts]:
    return {
        (row.hour, row.category, row.variant): (row.requests, row.errors, row.up, row.down)
        for row in connection.execute(sa.select(hourly_category_rollup))
    }


def stored_rollup(store: FeedbackStore) -> dict[RollupKey, Counts]:
    with store.engine.connect() as connection:
        return rollup_rows(connection)


def stored_category_rollup(store: FeedbackStore) -> dict[CategoryKey, CategoryCounts]:
    with store.engine.connect() as connection:
        return category_rollup_rows(connection)


def rebuilt_rollups(
    store: FeedbackStore,
) -> tuple[dict[RollupKey, Counts], dict[CategoryKey, CategoryCounts]]:
    """What the backfills compute from the raw rows now (rolled back: the store keeps its own)."""
    with store.engine.connect() as connection, connection.begin() as transaction:
        rebuild(connection)
        rows = rollup_rows(connection), category_rollup_rows(connection)
        transaction.rollback()
    return rows


def test_the_rollup_equals_the_raw_rows_after_generations_errors_and_changed_votes(
    store: FeedbackStore, make_generation: GenerationFactory
) -> None:
    records = mixed_generations(make_generation, 60)
    for record in records:
        store.record_generation(record)
    store.record_generation(records[0])  # recorded again: counted once
    before_unknown = stored_rollup(store), stored_category_rollup(store)
    with pytest.raises(GenerationNotFoundError):
        store.record_vote("no-such-generation", records[0].user_hash, "up")
    assert (stored_rollup(store), stored_category_rollup(store)) == before_unknown
    standing = cast_votes(store, records)

    expected = expected_rollup(records, standing)
    by_category = expected_category_rollup(records, standing)
    assert stored_rollup(store) == expected
    assert stored_category_rollup(store) == by_category
    assert rebuilt_rollups(store) == (expected, by_category)
    # The mix spreads over hours, variants and buckets, the first and the last included...
    assert len({key[0] for key in expected}) == 4
    assert {key[2] for key in expected} >= {0, len(LATENCY_BOUNDS_MS)}
    # ... and over every category, the one without a label (stored as '') included.
    assert {key[1] for key in by_category} == {"business", "sport", "tech", "politics", ""}


def test_the_migration_backfills_what_the_store_then_keeps_up_incrementally(
    store_url: str, make_generation: GenerationFactory
) -> None:
    """Rows stored before the rollups existed (revision 0001) are backfilled by 0002 and 0004;
    votes that later change them move the backfilled counts."""
    records = mixed_generations(make_generation, 40)
    old, new = records[:25], records[25:]
    engine = open_store(store_url).engine
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
        connection.execute(generations.insert(), [record.model_dump() for record in old])
        connection.execute(votes.insert(), [vote_row(record) for record in old[::2]])
    engine.dispose()
    store = open_store(store_url, migrate=True)
    try:
        # 0003 re-keyed the readers of the earlier rows; their votes still join to them.
        with store.engine.connect() as connection:
            rows = connection.execute(sa.select(generations.c.id, generations.c.user_hash))
            rekeyed = {generation_id: user_hash for generation_id, user_hash in rows}
        old = [record.model_copy(update={"user_hash": rekeyed[record.id]}) for record in old]
        records = old + new
        standing: Votes = {(record.id, record.user_hash): "up" for record in old[::2]}
        assert stored_rollup(store) == expected_rollup(old, standing)
        assert stored_category_rollup(store) == expected_category_rollup(old, standing)

        for record in new:
            store.record_generation(record)
        standing |= cast_votes(store, records)  # changes some of the backfilled votes
        expected = expected_rollup(records, standing)
        by_category = expected_category_rollup(records, standing)
        assert stored_rollup(store) == expected
        assert stored_category_rollup(store) == by_category
        assert rebuilt_rollups(store) == (expected, by_category)
    finally:
        store.engine.dispose()


def test_sql_and_python_put_every_latency_in_the_same_bucket(store: FeedbackStore) -> None:
    edges = [LATENCY_BOUNDS_MS[0], LATENCY_BOUNDS_MS[1], LATENCY_BOUNDS_MS[157]]
    edges.append(LATENCY_BOUNDS_MS[-1])
    values = [0.0, 1e-300, 1e300, *edges]
    values += [math.nextafter(edge, 0) for edge in edges]
    values += [math.nextafter(edge, math.inf) for edge in edges]
    with store.engine.connect() as connection:
        in_sql = [
            connection.execute(
                sa.select(latency_bucket_sql(sa.literal(value, sa.Float)))
            ).scalar_one()
            for value in values
        ]
    assert in_sql == [latency_bucket(value) for value in values]
    assert latency_bucket(edges[2]) == 158 and latency_bucket(math.nextafter(edges[2], 0)) == 157


def test_stats_since_cut_inside_an_hour_count_exactly_the_rows_after_the_cut(
    store: FeedbackStore, make_generation: GenerationFactory
) -> None:
    cut = START + timedelta(hours=1, minutes=20, seconds=30, microseconds=500_000)
    times = [
        cut - timedelta(hours=1),  # an earlier hour
        cut - timedelta(milliseconds=1),  # the cut's hour, just before it
        cut,
        cut + timedelta(minutes=30),  # the cut's hour, after it
        START + timedelta(hours=2),  # the next hour's first instant
        START + timedelta(hours=3, minutes=59),
    ]
    records = [
        make_generation(
            id=f"g{index}-{offset}",
            variant="AB"[index % 2],
            created_at=moment,
            latency_total_ms=float(10 + index * 7 + offset),
            error_code="model_error" if index == 3 and offset == 2 else None,
            category_label=LABELS[(index + offset) % len(LABELS)],
        )
        for index, moment in enumerate(times)
        for offset in range(3)
    ]
    for record in records:
        store.record_generation(record)
    standing: Votes = {}
    for n, record in enumerate(records):
        vote = "up" if n % 3 else "down"
        store.record_vote(record.id, record.user_hash, vote)
        standing[record.id, record.user_hash] = vote

    for since in (
        cut,
        cut + timedelta(milliseconds=1),  # (the Data API driver keeps milliseconds)
        START + timedelta(hours=1),  # on an hour's first instant
        START + timedelta(hours=3, minutes=59, seconds=1),  # after the last generation
        None,
    ):
        assert reported(store, since) == expected_stats(records, standing, since), since
        assert reported_by_category(store, since) == expected_by_category(
            records, standing, since
        ), since
    window = reported(store, cut)
    assert sum(requests for requests, *_ in window.values()) == 12


@pytest.mark.parametrize("count", [1, 2, 3, 41, 400])
def test_stats_percentiles_equal_the_exact_percentiles_of_the_raw_latencies(
    store: FeedbackStore, make_generation: GenerationFactory, count: int
) -> None:
    """Equal to the last bit, not within a tolerance: the rollup only finds where to read."""
    records = mixed_generations(make_generation, count)
    # Ties across bucket edges, and many values in one bucket.
    records += [
        make_generation(id=f"tie{index}", variant="A", latency_total_ms=LATENCY_BOUNDS_MS[150])
        for index in range(count // 4)
    ]
    for record in records:
        store.record_generation(record)
    for since in (None, START + timedelta(minutes=97, seconds=13)):
        assert reported(store, since) == expected_stats(records, {}, since)


def test_the_verdict_by_category_is_the_rule_on_each_categorys_votes(
    store: FeedbackStore, make_generation: GenerationFactory
) -> None:
    """Readers of sport prefer B, everyone else A: A leads overall, sport's winner is B."""
    tastes = {"sport": {"A": 0.2, "B": 0.8}, "business": {"A": 0.8, "B": 0.3}, None: {"A": 0.7}}
    records = []
    for category, rates in tastes.items():
        for variant in "AB":
            rate = rates.get(variant, 0.5)
            for index in range(40):
                record = make_generation(
                    id=f"{category}-{variant}-{index}",
                    user_hash=f"reader-{category}-{variant}-{index}",
                    variant=variant,
                    category_label=category,
                    created_at=START + timedelta(minutes=index),
                )
                store.record_generation(record)
                store.record_vote(
                    record.id, record.user_hash, "up" if index < rate * 40 else "down"
                )
                records.append(record)

    report = stats_report(store, since=None, weights={"A": 1, "B": 1})

    assert report.verdict.leader == "A"
    by_name = {item.category: item for item in report.by_category}
    assert list(by_name) == ["business", "sport", UNCATEGORISED]
    for item in report.by_category:
        judgement = judge({row.variant: (row.up, row.down) for row in item.variants})
        assert item.verdict.decision == judgement.decision
        assert item.verdict.probability_best == judgement.probability_best
    sport = by_name["sport"]
    assert (sport.verdict.decision, sport.verdict.leader, sport.disagrees_with_overall) == (
        "winner",
        "B",
        True,
    )
    assert [(row.variant, row.up, row.down) for row in sport.variants] == [
        ("A", 8, 32),
        ("B", 32, 8),
    ]
    assert not by_name["business"].disagrees_with_overall
    assert not by_name[UNCATEGORISED].disagrees_with_overall
