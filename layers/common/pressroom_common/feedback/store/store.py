"""One feedback store over SQLite, PostgreSQL and Aurora (Data API): SQLAlchemy Core, one
transaction per call, every database outage raised as `StoreUnavailableError`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from pressroom_common.experiment import statistics
from pressroom_common.experiment.report import (
    DECISION_PROBABILITY,
    MIN_VOTES_PER_VARIANT,
    CredibleInterval,
    ExperimentVerdict,
    LatencyPercentiles,
    StatsReport,
    VariantStats,
    decide,
)
from pressroom_common.feedback.contracts import GenerationRecord, Vote, VoteRecord
from pressroom_common.feedback.store.engines import create_store_engine
from pressroom_common.feedback.store.errors import GenerationNotFoundError, StoreUnavailableError
from pressroom_common.feedback.store.migrations import MigrationResult, upgrade_to_head
from pressroom_common.feedback.store.schema import UtcDateTime, generations, votes
from pressroom_common.platform.settings import WEIGHTED_STRATEGY

# What a database outage looks like through the drivers and through the Data API's botocore
# client (whose errors SQLAlchemy wraps in a StatementError).
_DRIVER_OUTAGES = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.DisconnectionError,
    exc.TimeoutError,
)
_DATA_API_OUTAGES = (BotoCoreError, ClientError)


def _is_outage(error: Exception) -> bool:
    if isinstance(error, _DRIVER_OUTAGES + _DATA_API_OUTAGES):
        return True
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, exc.StatementError) and isinstance(error.orig, _DATA_API_OUTAGES)


@dataclass(frozen=True)
class _VariantAggregate:
    variant: str
    requests: int
    errors: int
    weighted_requests: int
    up: int
    down: int
    p50: float | None = None
    p95: float | None = None

    @property
    def impressions(self) -> int:
        return self.requests - self.errors


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


class FeedbackStore:
    """Records generations and votes, and aggregates them into experiment statistics."""

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

    def record_generation(self, record: GenerationRecord) -> None:
        """Store one served response; recording the same id again changes nothing."""
        statement = (
            self._insert(generations)
            .values(**record.model_dump())
            .on_conflict_do_nothing(index_elements=[generations.c.id])
        )
        with self._transaction("the generation") as connection:
            connection.execute(statement)

    def record_vote(self, generation_id: str, user_hash: str, vote: Vote | str) -> VoteRecord:
        """Insert or replace this user's vote on a generation, in one atomic statement.

        The vote row is selected from `generations`, so an unknown id inserts nothing and the
        statement returns no row; a repeated vote updates the row the primary key finds.
        """
        vote = Vote(vote)
        now = datetime.now(UTC)
        source = sa.select(
            generations.c.id,
            sa.literal(user_hash, sa.String(64)),
            sa.literal(vote.value, sa.String(4)),
            sa.literal(now, UtcDateTime()),
            sa.literal(now, UtcDateTime()),
            generations.c.variant,
            generations.c.created_at,
        ).where(generations.c.id == generation_id)
        insert = self._insert(votes).from_select(
            [
                "generation_id",
                "user_hash",
                "vote",
                "created_at",
                "updated_at",
                "variant",
                "generation_created_at",
            ],
            source,
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
        with self._transaction("the vote") as connection:
            row = connection.execute(statement).mappings().one_or_none()
        if row is None:
            raise GenerationNotFoundError(generation_id)
        return VoteRecord.model_validate(dict(row))

    def variant_counts(self) -> dict[str, tuple[int, int, int]]:
        """All-time (impressions, up, down) per variant, for adaptive routing."""
        with self._transaction("the vote counts") as connection:
            aggregates = self._aggregate(connection, since=None, with_latency=False)
        return {item.variant: (item.impressions, item.up, item.down) for item in aggregates}

    def traffic_over_time(self, bucket_s: int) -> list[TrafficBucket]:
        """Requests, errors and votes per variant and `bucket_s`-second bucket, oldest first.

        Aggregated in SQL (two GROUP BYs), so a report of a million votes moves a few rows.
        """
        if bucket_s < 1:
            raise ValueError(f"bucket_s must be at least 1 second, got {bucket_s}")
        failed = generations.c.error_code.is_not(None)
        requests_bucket = self._bucket_index(generations.c.created_at, bucket_s)
        votes_bucket = self._bucket_index(votes.c.generation_created_at, bucket_s)
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

    def _bucket_index(self, column: Any, bucket_s: int) -> Any:
        """floor(seconds since the epoch / bucket_s) of a timestamp column, per dialect."""
        if self._engine.dialect.name == "sqlite":
            # Naive UTC text; integer division floors the (positive) epoch seconds.
            return sa.cast(sa.func.strftime("%s", column), sa.Integer) // bucket_s
        return sa.cast(sa.func.floor(sa.extract("epoch", column) / bucket_s), sa.BigInteger)

    def stats(self, since: datetime | None, weights: Mapping[str, float]) -> StatsReport:
        """Per-variant statistics and the experiment verdict over generations since `since`."""
        with self._transaction("the statistics") as connection:
            if self._engine.dialect.name == "postgresql":
                # One big aggregate: JIT compilation costs more than it saves here, and the
                # percentile sorts should stay in memory.
                connection.exec_driver_sql("SET LOCAL jit = off")
                connection.exec_driver_sql("SET LOCAL work_mem = '32MB'")
            aggregates = self._aggregate(connection, since=since, with_latency=True)
        return _build_report(aggregates, since, weights)

    @contextmanager
    def _transaction(self, operation: str) -> Iterator[Connection]:
        try:
            with self._engine.begin() as connection:
                yield connection
        except Exception as error:
            if _is_outage(error):
                raise StoreUnavailableError(operation) from error
            raise

    def _insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL spell it alike)."""
        insert: Callable[[sa.Table], Any] = (
            sqlite.insert if self._engine.dialect.name == "sqlite" else postgresql.insert
        )
        return insert(table)

    def _aggregate(
        self, connection: Connection, *, since: datetime | None, with_latency: bool
    ) -> list[_VariantAggregate]:
        """One statement: generation counts (and latency percentiles) beside vote counts."""
        window = generations.c.created_at >= since if since is not None else sa.true()
        vote_window = votes.c.generation_created_at >= since if since is not None else sa.true()
        failed = generations.c.error_code.is_not(None)
        latency_columns: list[Any] = []
        if with_latency and self._engine.dialect.name == "postgresql":
            latency = generations.c.latency_total_ms
            latency_columns = [
                sa.func.percentile_cont(fraction).within_group(latency).filter(~failed).label(name)
                for name, fraction in (("p50", 0.5), ("p95", 0.95))
            ]
        counts = (
            sa.select(
                generations.c.variant,
                sa.func.count().label("requests"),
                sa.func.count().filter(failed).label("errors"),
                sa.func.count()
                .filter(generations.c.strategy == WEIGHTED_STRATEGY)
                .label("weighted_requests"),
                *latency_columns,
            )
            .where(window)
            .group_by(generations.c.variant)
            .cte("counts")
        )
        vote_counts = (
            sa.select(
                votes.c.variant,
                sa.func.count().filter(votes.c.vote == Vote.UP.value).label("up"),
                sa.func.count().filter(votes.c.vote == Vote.DOWN.value).label("down"),
            )
            .where(vote_window)
            .group_by(votes.c.variant)
            .cte("vote_counts")
        )
        columns: list[Any] = [
            counts.c.variant,
            counts.c.requests,
            counts.c.errors,
            counts.c.weighted_requests,
            sa.func.coalesce(vote_counts.c.up, 0).label("up"),
            sa.func.coalesce(vote_counts.c.down, 0).label("down"),
        ]
        source: Any = counts.outerjoin(vote_counts, vote_counts.c.variant == counts.c.variant)
        if latency_columns:
            columns += [counts.c.p50, counts.c.p95]
        elif with_latency:
            percentiles = _interpolated_percentiles(window & ~failed)
            columns += [percentiles.c.p50, percentiles.c.p95]
            source = source.outerjoin(percentiles, percentiles.c.variant == counts.c.variant)
        query = sa.select(*columns).select_from(source).order_by(counts.c.variant)
        return [_VariantAggregate(**row) for row in connection.execute(query).mappings()]


def _interpolated_percentiles(condition: sa.ColumnElement[bool]) -> Any:
    """`percentile_cont` for databases without it (SQLite): rank the latencies with window
    functions and interpolate linearly between the two ranks around p * (n - 1)."""
    latency = generations.c.latency_total_ms
    ranked = (
        sa.select(
            generations.c.variant,
            latency.label("latency"),
            (
                sa.func.row_number().over(partition_by=generations.c.variant, order_by=latency) - 1
            ).label("rank"),
            sa.func.count().over(partition_by=generations.c.variant).label("n"),
        )
        .where(condition)
        .cte("ranked")
    )

    def percentile(fraction: float) -> Any:
        position = fraction * (ranked.c.n - 1)
        lower = sa.cast(position, sa.Integer)  # floor: position is never negative
        weight = position - lower
        return sa.func.sum(
            sa.case(
                (ranked.c.rank == lower, ranked.c.latency * (1 - weight)),
                (ranked.c.rank == lower + 1, ranked.c.latency * weight),
                else_=0.0,
            )
        )

    return (
        sa.select(ranked.c.variant, percentile(0.5).label("p50"), percentile(0.95).label("p95"))
        .group_by(ranked.c.variant)
        .cte("percentiles")
    )


def _build_report(
    aggregates: list[_VariantAggregate], since: datetime | None, weights: Mapping[str, float]
) -> StatsReport:
    total_requests = sum(item.requests for item in aggregates)
    posteriors = {
        item.variant: statistics.up_rate_posterior(item.up, item.down) for item in aggregates
    }
    best = statistics.best_arm_probabilities(posteriors)
    variants = [
        VariantStats(
            variant=item.variant,
            requests=item.requests,
            impressions=item.impressions,
            errors=item.errors,
            error_rate=item.errors / item.requests,
            traffic_share=item.requests / total_requests,
            up=item.up,
            down=item.down,
            up_rate=item.up / (item.up + item.down) if item.up + item.down else None,
            up_rate_interval=CredibleInterval(
                low=statistics.beta_quantile(*posteriors[item.variant], 0.025),
                high=statistics.beta_quantile(*posteriors[item.variant], 0.975),
            ),
            latency_ms=LatencyPercentiles(
                p50=_float_or_none(item.p50), p95=_float_or_none(item.p95)
            ),
        )
        for item in aggregates
    ]
    srm_p_value = statistics.sample_ratio_mismatch_p_value(
        {item.variant: item.weighted_requests for item in aggregates}, weights
    )
    probability_best = {name: arm.probability_best for name, arm in best.items()}
    decision, leader = decide(variants, probability_best)
    return StatsReport(
        since=since,
        generated_at=datetime.now(UTC),
        total_requests=total_requests,
        variants=variants,
        verdict=ExperimentVerdict(
            probability_best=probability_best,
            expected_loss={name: arm.expected_loss for name, arm in best.items()},
            sample_ratio_mismatch_p_value=srm_p_value,
            weights=dict(weights),
            decision=decision,
            leader=leader,
            min_votes_per_variant=MIN_VOTES_PER_VARIANT,
            decision_probability=DECISION_PROBABILITY,
        ),
    )


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def open_store(url: str, *, migrate: bool = False) -> FeedbackStore:
    """Open the store at `url` (see `engines` for the accepted forms); `migrate` upgrades the
    schema first, which local runs want and deployed functions leave to the deploy."""
    store = FeedbackStore(create_store_engine(url))
    if migrate:
        store.migrate()
    return store
