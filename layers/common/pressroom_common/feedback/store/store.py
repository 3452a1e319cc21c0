"""One feedback store over SQLite, PostgreSQL and Aurora (Data API): SQLAlchemy Core, one
transaction per call, every database outage raised as `StoreUnavailableError` and every
fault AWS reports that retrying cannot fix as `StoreFailedError` (`outages.py` decides).

It records generations and votes, keeps the rollups in step, and answers aggregates: the
experiment's totals (counts and exact latency percentiles, `experiment_totals`), which
`experiment.report.build_report` turns into the `/api/stats` report.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, RowMapping

from pressroom_common.experiment.report import (
    CategoryCounts,
    ExperimentTotals,
    VariantTotals,
)
from pressroom_common.experiment.settings import WEIGHTED_STRATEGY
from pressroom_common.feedback.store.engines import create_store_engine
from pressroom_common.feedback.store.errors import GenerationNotFoundError
from pressroom_common.feedback.store.migrations import MigrationResult, upgrade_to_head
from pressroom_common.feedback.store.outages import store_failure
from pressroom_common.feedback.store.rollup import (
    CATEGORY_COUNTERS,
    COUNTERS,
    LATENCY_BOUNDS_MS,
    UNCATEGORISED,
    CategoryKey,
    RollupKey,
    category_key,
    category_window_totals,
    epoch_bucket_sql,
    rollup_key,
    window_totals,
)
from pressroom_common.feedback.store.schema import (
    generations,
    hourly_category_rollup,
    hourly_rollup,
    votes,
)
from pressroom_common.platform.errors import VoteNotAllowed
from pressroom_common.platform.observability import tracer
from pressroom_common.platform.readers import ANONYMOUS_READER
from pressroom_common.records import GenerationRecord, Vote, VoteRecord

# The latency percentiles the totals carry (the report's p50 and p95).
PERCENTILES = (0.5, 0.95)


@dataclass(frozen=True)
class TrafficBucket:
    """One variant's requests and votes in one time bucket (votes by their generation's time)."""

    start: datetime
    variant: str
    model_name: str
    requests: int
    errors: int
    up: int
    down: int


@dataclass(frozen=True)
class VotedGeneration:
    """One reader's vote (as it stands: a changed vote replaced the earlier one) on one
    generation, with exactly what that reader saw and the model that wrote it."""

    generation_id: str
    prompt: str
    text: str
    variant: str
    model_name: str
    model_version: str
    vote: Vote
    voted_at: datetime  # when the vote took its present value


class FeedbackStore:
    """Records generations and votes, and aggregates them into the experiment's totals."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine

    def migrate(self) -> MigrationResult:
        """Bring the schema to the newest migration (idempotent); never downgrade a schema that
        a newer release migrated (the result says `ahead`, and nothing was changed)."""
        with self._transaction("the schema migration") as connection:
            return upgrade_to_head(connection)

    def ping(self) -> None:
        """Raise `StoreUnavailableError` unless the database answers a trivial query."""
        with self._transaction("the health check") as connection:
            connection.execute(sa.select(sa.literal(1)))

    @tracer.capture_method(capture_response=False)
    def record_generation(self, record: GenerationRecord) -> None:
        """Store one served response and count it in the rollup; the same id again changes
        nothing."""
        statement = (
            self._insert(generations)
            .values(**record.model_dump())
            .on_conflict_do_nothing(index_elements=[generations.c.id])
            .returning(generations.c.id)
        )
        with self._transaction("the generation") as connection:
            if connection.execute(statement).first() is None:
                return  # recorded (and counted) before
            errors = int(record.error_code is not None)
            self._add_to_rollup(
                connection,
                rollup_key(record.created_at, record.variant, record.latency_total_ms),
                requests=1,
                errors=errors,
                weighted_requests=int(record.strategy == WEIGHTED_STRATEGY),
            )
            self._add_to_category_rollup(
                connection,
                category_key(record.created_at, record.category_label, record.variant),
                requests=1,
                errors=errors,
            )

    @tracer.capture_method(capture_response=False)
    def record_vote(self, generation_id: str, user_hash: str, vote: Vote | str) -> VoteRecord:
        """Insert or replace this user's vote on a generation, and move the rollup's counts.

        The generation's row is locked first (`FOR NO KEY UPDATE`; SQLite's `BEGIN IMMEDIATE`
        takes the database's write lock), so the voters of one generation take turns: the
        previous vote read under the lock is the one the upsert replaces, and the rollup moves
        by exactly the difference. An unknown id writes nothing, and so does a vote by anyone
        but the reader the generation was served to (`VoteNotAllowed`): one reader, one vote.
        """
        vote = Vote(vote)
        now = datetime.now(UTC)
        with self._transaction("the vote") as connection:
            if self._engine.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            generation = connection.execute(
                sa.select(
                    generations.c.variant,
                    generations.c.created_at,
                    generations.c.latency_total_ms,
                    generations.c.user_hash,
                    generations.c.category_label,
                )
                .where(generations.c.id == generation_id)
                .with_for_update(key_share=True)
            ).one_or_none()
            if generation is None:
                raise GenerationNotFoundError(generation_id)
            if generation.user_hash != user_hash or user_hash == ANONYMOUS_READER:
                raise VoteNotAllowed(
                    "generation_id", "this generation was not served to this reader"
                )
            this_vote = (votes.c.generation_id == generation_id) & (votes.c.user_hash == user_hash)
            previous = connection.execute(sa.select(votes.c.vote).where(this_vote)).scalar()
            insert = self._insert(votes).values(
                generation_id=generation_id,
                user_hash=user_hash,
                vote=vote.value,
                created_at=now,
                updated_at=now,
                variant=generation.variant,
                generation_created_at=generation.created_at,
            )
            statement = insert.on_conflict_do_update(
                index_elements=[votes.c.generation_id, votes.c.user_hash],
                set_={"vote": insert.excluded.vote, "updated_at": insert.excluded.updated_at},
            ).returning(
                votes.c.generation_id,
                votes.c.user_hash,
                votes.c.vote,
                votes.c.created_at,
                votes.c.updated_at,
                votes.c.variant,
            )
            row = connection.execute(statement).mappings().one()
            if previous != vote.value:
                moved = {
                    "up": (vote is Vote.UP) - (previous == Vote.UP.value),
                    "down": (vote is Vote.DOWN) - (previous == Vote.DOWN.value),
                }
                self._add_to_rollup(
                    connection,
                    rollup_key(
                        generation.created_at, generation.variant, generation.latency_total_ms
                    ),
                    **moved,
                )
                self._add_to_category_rollup(
                    connection,
                    category_key(
                        generation.created_at, generation.category_label, generation.variant
                    ),
                    **moved,
                )
        return VoteRecord.model_validate(dict(row))

    def variant_counts(self, since: datetime | None = None) -> dict[str, tuple[int, int, int]]:
        """(impressions, up, down) per variant over generations created at or after `since`
        (all time when None), for adaptive routing (the rollup)."""
        with self._transaction("the vote counts") as connection:
            totals, _ = _variant_totals(connection.execute(window_totals(since)).mappings())
        return {item.variant: (item.impressions, item.up, item.down) for item in totals}

    def traffic_over_time(self, bucket_s: int) -> list[TrafficBucket]:
        """Requests, errors and votes per variant and `bucket_s`-second bucket, oldest first.

        Aggregated in SQL (two GROUP BYs), so a report of a million votes moves a few rows.
        """
        if bucket_s < 1:
            raise ValueError(f"bucket_s must be at least 1 second, got {bucket_s}")
        dialect = self._engine.dialect.name
        failed = generations.c.error_code.is_not(None)
        requests_bucket = epoch_bucket_sql(generations.c.created_at, bucket_s, dialect)
        votes_bucket = epoch_bucket_sql(votes.c.generation_created_at, bucket_s, dialect)
        requests_query = sa.select(
            requests_bucket.label("bucket"),
            generations.c.variant,
            # A variant serves one model (its name is fixed; only the version moves).
            sa.func.max(generations.c.model_name).label("model_name"),
            sa.func.count().label("requests"),
            sa.func.count().filter(failed).label("errors"),
        ).group_by(requests_bucket, generations.c.variant)
        votes_query = sa.select(
            votes_bucket.label("bucket"),
            votes.c.variant,
            sa.func.count().filter(votes.c.vote == Vote.UP.value).label("up"),
            sa.func.count().filter(votes.c.vote == Vote.DOWN.value).label("down"),
        ).group_by(votes_bucket, votes.c.variant)
        with self._transaction("the traffic over time") as connection:
            request_rows = connection.execute(requests_query).all()
            vote_rows = {
                (int(row.bucket), row.variant): row for row in connection.execute(votes_query)
            }
        buckets = []
        for row in request_rows:
            voted = vote_rows.get((int(row.bucket), row.variant))
            buckets.append(
                TrafficBucket(
                    start=datetime.fromtimestamp(int(row.bucket) * bucket_s, UTC),
                    variant=row.variant,
                    model_name=row.model_name,
                    requests=row.requests,
                    errors=row.errors,
                    up=voted.up if voted else 0,
                    down=voted.down if voted else 0,
                )
            )
        return sorted(buckets, key=lambda bucket: (bucket.start, bucket.variant))

    def voted_generations(self) -> list[VotedGeneration]:
        """Every vote on a generation that answered, oldest vote first (what retraining reads)."""
        query = (
            sa.select(
                votes.c.generation_id,
                generations.c.prompt,
                generations.c.text,
                generations.c.variant,
                generations.c.model_name,
                generations.c.model_version,
                votes.c.vote,
                votes.c.updated_at,
            )
            .join(generations, generations.c.id == votes.c.generation_id)
            .where(generations.c.error_code.is_(None))
            .order_by(votes.c.updated_at, votes.c.generation_id, votes.c.user_hash)
        )
        with self._transaction("the votes") as connection:
            rows = connection.execute(query).all()
        return [
            VotedGeneration(
                generation_id=row.generation_id,
                prompt=row.prompt,
                text=row.text,
                variant=row.variant,
                model_name=row.model_name,
                model_version=row.model_version,
                vote=Vote(row.vote),
                voted_at=row.updated_at,
            )
            for row in rows
        ]

    @tracer.capture_method(capture_response=False)
    def experiment_totals(self, since: datetime | None) -> ExperimentTotals:
        """Each variant's counts and latency percentiles over the generations since `since`
        (all time when None), and its counts per category: what `/api/stats` reports.

        Three reads of one snapshot: the rollup's counters and latency histogram per variant
        (`rollup.window_totals`), the exact p50/p95 from `generations` (see
        `_exact_percentiles`), and the category rollup's counters per category and variant
        (`rollup.category_window_totals`). Counts and percentiles equal a full scan of the raw
        rows.
        """
        with self._transaction("the statistics") as connection:
            if self._engine.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN")  # a read transaction: one snapshot
            else:
                connection.exec_driver_sql(
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
                )
            totals, histograms = _variant_totals(
                connection.execute(window_totals(since)).mappings()
            )
            latencies = _exact_percentiles(connection, since, histograms)
            categories = _category_counts(
                connection.execute(category_window_totals(since)).mappings()
            )
        return ExperimentTotals(
            variants=[_with_latency(item, latencies.get(item.variant)) for item in totals],
            categories=categories,
        )

    @contextmanager
    def _transaction(self, operation: str) -> Iterator[Connection]:
        try:
            with self._engine.begin() as connection:
                yield connection
        except Exception as error:
            # An outage becomes StoreUnavailableError, an AWS fault StoreFailedError (outages.py).
            failure = store_failure(error, operation)
            if failure is None:
                raise
            raise failure from error

    def _insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL spell it alike)."""
        insert: Callable[[sa.Table], Any] = (
            sqlite.insert if self._engine.dialect.name == "sqlite" else postgresql.insert
        )
        return insert(table)

    def _add_to_rollup(self, connection: Connection, key: RollupKey, **counts: int) -> None:
        """Add `counts` to one `hourly_rollup` row, creating it at zero first if need be."""
        hour, variant, bucket = key
        self._add(
            connection,
            hourly_rollup,
            COUNTERS,
            {"hour": hour, "variant": variant, "latency_bucket": bucket},
            counts,
        )

    def _add_to_category_rollup(
        self, connection: Connection, key: CategoryKey, **counts: int
    ) -> None:
        """Add `counts` to one `hourly_category_rollup` row, creating it if need be."""
        hour, category, variant = key
        self._add(
            connection,
            hourly_category_rollup,
            CATEGORY_COUNTERS,
            {"hour": hour, "category": category, "variant": variant},
            counts,
        )

    def _add(
        self,
        connection: Connection,
        table: sa.Table,
        counters: tuple[str, ...],
        key: Mapping[str, object],
        counts: Mapping[str, int],
    ) -> None:
        """Add `counts` to the row of `table` at `key`, creating it at zero first (atomic)."""
        insert = self._insert(table).values(
            **key, **{name: counts.get(name, 0) for name in counters}
        )
        connection.execute(
            insert.on_conflict_do_update(
                index_elements=list(table.primary_key),
                set_={name: table.c[name] + insert.excluded[name] for name in counters},
            )
        )


def _variant_totals(
    rows: Iterable[RowMapping],
) -> tuple[list[VariantTotals], dict[str, dict[int, int]]]:
    """Sum `window_totals` rows per variant, by name; also each variant's successful requests
    per latency bucket."""
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    histograms: dict[str, dict[int, int]] = defaultdict(dict)
    for row in rows:
        variant, bucket = row["variant"], row["latency_bucket"]
        totals[variant].update({name: int(row[name]) for name in COUNTERS})
        successes = int(row["requests"]) - int(row["errors"])
        if successes:
            histograms[variant][bucket] = histograms[variant].get(bucket, 0) + successes
    variants = [
        VariantTotals(
            variant,
            requests=counts["requests"],
            errors=counts["errors"],
            weighted_requests=counts["weighted_requests"],
            up=counts["up"],
            down=counts["down"],
        )
        for variant, counts in sorted(totals.items())
    ]
    return variants, histograms


def _with_latency(item: VariantTotals, latency: tuple[float, float] | None) -> VariantTotals:
    if latency is None:
        return item
    return replace(item, latency_p50_ms=latency[0], latency_p95_ms=latency[1])


def _category_counts(rows: Iterable[RowMapping]) -> dict[str | None, CategoryCounts]:
    """Sum `category_window_totals` rows: category -> variant -> (impressions, up, down), the
    category being the classifier's label, None for none."""
    totals: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for row in rows:
        totals[row["category"], row["variant"]].update(
            {name: int(row[name]) for name in CATEGORY_COUNTERS}
        )
    counts: dict[str | None, dict[str, tuple[int, int, int]]] = defaultdict(dict)
    for (category, variant), each in totals.items():
        label = None if category == UNCATEGORISED else category
        counts[label][variant] = (each["requests"] - each["errors"], each["up"], each["down"])
    return dict(counts)


def _exact_percentiles(
    connection: Connection, since: datetime | None, histograms: Mapping[str, Mapping[int, int]]
) -> dict[str, tuple[float, float]]:
    """p50 and p95 of each variant's successful latencies, as `percentile_cont` computes them.

    The value at rank k lies in the bucket where the histogram's running count passes k; the
    latencies below that bucket's lower bound are exactly the counts of the buckets before it.
    So one query per percentile starts the (variant, latency) index at that bound, skips the
    rest of the rank there and reads two values: ranks k and k + 1, interpolated linearly. Each
    walks at most one bucket's rows (buckets are 4.4% wide); all of them are one statement.
    """
    latency = generations.c.latency_total_ms
    targets: list[tuple[str, float]] = []
    queries = []
    for variant, histogram in sorted(histograms.items()):
        successes = sum(histogram.values())
        for fraction in PERCENTILES:
            position = fraction * (successes - 1)
            bucket, rank = _locate(histogram, math.floor(position))
            conditions = [generations.c.variant == variant, generations.c.error_code.is_(None)]
            if since is not None:
                conditions.append(generations.c.created_at >= since)
            if bucket:
                conditions.append(latency >= LATENCY_BOUNDS_MS[bucket - 1])
            ranked = (
                sa.select(latency).where(*conditions).order_by(latency).limit(2).offset(rank)
            ).subquery()
            queries.append(
                sa.select(sa.literal_column(str(len(targets))).label("target"), ranked.c[0])
            )
            targets.append((variant, position))
    if not queries:
        return {}
    found: dict[int, list[float]] = defaultdict(list)
    for target, value in connection.execute(sa.union_all(*queries)):
        found[int(target)].append(float(value))
    results: dict[str, list[float]] = defaultdict(list)
    for index, (variant, position) in enumerate(targets):
        low, *above = sorted(found[index])
        high = above[0] if above else low  # rank k is the last one
        results[variant].append(low + (high - low) * (position - math.floor(position)))
    return {variant: (p50, p95) for variant, (p50, p95) in results.items()}


def _locate(histogram: Mapping[int, int], rank: int) -> tuple[int, int]:
    """The bucket holding the value at `rank` (from 0) and that value's rank within it."""
    for bucket in sorted(histogram):
        if rank < histogram[bucket]:
            return bucket, rank
        rank -= histogram[bucket]
    raise ValueError("rank beyond the histogram")


def open_store(url: str, *, migrate: bool = False) -> FeedbackStore:
    """Open the store at `url` (see `engines` for the accepted forms); `migrate` upgrades the
    schema first, which local runs want and deployed functions leave to the deploy."""
    store = FeedbackStore(create_store_engine(url))
    if migrate:
        store.migrate()
    return store
