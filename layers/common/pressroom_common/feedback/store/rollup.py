"""The hourly rollup that statistics read instead of a million raw rows.

`hourly_rollup` holds, per hour (of the generation's `created_at`), variant and latency bucket:
requests, errors, weight-routed requests, and the up/down votes on those generations. The store
updates it in the same transaction as each generation and vote, so it always equals what
`rebuild` computes from the raw rows (the 0002 migration's backfill, and bulk loads').

`hourly_category_rollup` holds the same counts (without weight-routed requests) per hour,
classifier category and variant, for the verdict by category (`category_window_totals`); the
0004 migration backfilled it, and the store keeps it in step in the same transactions. A
generation without a category counts under `UNCATEGORISED`.

Answers stay exact:
- counts: sums of the rollup's rows; a window `since` takes the full hours after since's hour
  from the rollup and since's own, partial hour from the raw rows (`window_totals`);
- latency percentiles: the bucket counts locate the bucket holding each percentile's rank, then
  one indexed query reads the exact latencies at that rank from `generations` (the store's
  `_exact_percentiles`), so p50/p95 equal `percentile_cont` to the last bit.

Buckets are fixed and log-spaced, 16 per octave (4.4% wide) from 1/16 ms to 2^20 ms (17 min):
a latency's bucket is the number of bounds at or below it. Python (`latency_bucket`) and SQL
(`latency_bucket_sql`) both find it by comparing with the same floats, so they always agree.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pressroom_common.experiment.settings import WEIGHTED_STRATEGY
from pressroom_common.feedback.store.schema import (
    generations,
    hourly_category_rollup,
    hourly_rollup,
    votes,
)
from pressroom_common.records import Vote

HOUR = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BUCKETS_PER_OCTAVE = 16
LATENCY_BOUNDS_MS = tuple(
    2.0 ** (step / BUCKETS_PER_OCTAVE)
    for step in range(-4 * BUCKETS_PER_OCTAVE, 20 * BUCKETS_PER_OCTAVE + 1)
)
COUNTERS = ("requests", "errors", "weighted_requests", "up", "down")
CATEGORY_COUNTERS = ("requests", "errors", "up", "down")
# What `hourly_category_rollup` stores for a generation without a category (a classifier
# label is never empty).
UNCATEGORISED = ""

RollupKey = tuple[int, str, int]
"""(hour since the Unix epoch, variant, latency bucket): one row of `hourly_rollup`."""
CategoryKey = tuple[int, str, str]
"""(hour since the Unix epoch, category, variant): one row of `hourly_category_rollup`."""


def hour_of(moment: datetime) -> int:
    return (moment - EPOCH) // HOUR


def hour_start(hour: int) -> datetime:
    return EPOCH + hour * HOUR


def latency_bucket(latency_ms: float) -> int:
    return bisect_right(LATENCY_BOUNDS_MS, latency_ms)


def rollup_key(created_at: datetime, variant: str, latency_ms: float) -> RollupKey:
    return hour_of(created_at), variant, latency_bucket(latency_ms)


def category_key(created_at: datetime, category_label: str | None, variant: str) -> CategoryKey:
    return hour_of(created_at), category_label or UNCATEGORISED, variant


def category_sql(column: Any) -> Any:
    """`category_key`'s category in SQL."""
    return sa.func.coalesce(column, sa.literal(UNCATEGORISED, sa.String))


def latency_bucket_sql(column: Any) -> Any:
    """`latency_bucket` in SQL: a balanced CASE over the same bounds (a few comparisons a row)."""

    def between(low: int, high: int) -> Any:
        if low == high:
            return sa.literal_column(str(low), sa.Integer)
        middle = (low + high + 1) // 2  # the bucket is >= middle iff bound[middle - 1] <= value
        return sa.case(
            (column < LATENCY_BOUNDS_MS[middle - 1], between(low, middle - 1)),
            else_=between(middle, high),
        )

    return between(0, len(LATENCY_BOUNDS_MS))


def epoch_bucket_sql(column: Any, bucket_s: int, dialect: str) -> Any:
    """floor(seconds since the epoch / bucket_s) of a timestamp column, per dialect."""
    if dialect == "sqlite":
        # Naive UTC text; integer division floors the (positive) epoch seconds.
        return sa.cast(sa.func.strftime("%s", column), sa.Integer) // bucket_s
    return sa.cast(sa.func.floor(sa.extract("epoch", column) / bucket_s), sa.BigInteger)


def _counted(
    rows: Any, *, failed: Any, weighted: Any, up: Any, down: Any, group_by: list[Any]
) -> sa.Select[Any]:
    """Group raw rows into the rollup's counters (requests = rows)."""
    return sa.select(
        *group_by,
        sa.func.count().label("requests"),
        sa.func.count().filter(failed).label("errors"),
        sa.func.count().filter(weighted).label("weighted_requests"),
        up.label("up"),
        down.label("down"),
    ).group_by(*group_by)


def rebuild(connection: Connection) -> None:
    """Recompute both rollups from `generations` and `votes` (the one backfill)."""
    rebuild_hourly(connection)
    rebuild_categories(connection)


def _hourly_voted_rows(connection: Connection, *columns: Any) -> Any:
    """Every generation's hour, `columns` and up and down votes: what both rebuilds group."""
    vote_counts = _vote_counts()
    return (
        sa.select(
            epoch_bucket_sql(generations.c.created_at, 3600, connection.dialect.name).label("hour"),
            *columns,
            sa.func.coalesce(vote_counts.c.up, 0).label("up"),
            sa.func.coalesce(vote_counts.c.down, 0).label("down"),
        )
        .select_from(
            generations.outerjoin(vote_counts, vote_counts.c.generation_id == generations.c.id)
        )
        .subquery("rows")
    )


def _vote_counts() -> Any:
    """Up and down votes per generation id."""
    return (
        sa.select(
            votes.c.generation_id,
            sa.func.count().filter(votes.c.vote == Vote.UP.value).label("up"),
            sa.func.count().filter(votes.c.vote == Vote.DOWN.value).label("down"),
        )
        .group_by(votes.c.generation_id)
        .subquery("vote_counts")
    )


def rebuild_hourly(connection: Connection) -> None:
    """Recompute `hourly_rollup` from the raw rows (the 0002 migration's backfill)."""
    rows = _hourly_voted_rows(
        connection,
        generations.c.variant,
        latency_bucket_sql(generations.c.latency_total_ms).label("latency_bucket"),
        generations.c.error_code,
        generations.c.strategy,
    )
    totals = _counted(
        rows,
        failed=rows.c.error_code.is_not(None),
        weighted=rows.c.strategy == WEIGHTED_STRATEGY,
        up=sa.func.sum(rows.c.up),
        down=sa.func.sum(rows.c.down),
        group_by=[rows.c.hour, rows.c.variant, rows.c.latency_bucket],
    )
    connection.execute(hourly_rollup.delete())
    connection.execute(
        hourly_rollup.insert().from_select(["hour", "variant", "latency_bucket", *COUNTERS], totals)
    )


def rebuild_categories(connection: Connection) -> None:
    """Recompute `hourly_category_rollup` from the raw rows (the 0004 migration's backfill)."""
    rows = _hourly_voted_rows(
        connection,
        category_sql(generations.c.category_label).label("category"),
        generations.c.variant,
        generations.c.error_code,
    )
    group_by = [rows.c.hour, rows.c.category, rows.c.variant]
    totals = sa.select(
        *group_by,
        sa.func.count().label("requests"),
        sa.func.count().filter(rows.c.error_code.is_not(None)).label("errors"),
        sa.func.sum(rows.c.up).label("up"),
        sa.func.sum(rows.c.down).label("down"),
    ).group_by(*group_by)
    connection.execute(hourly_category_rollup.delete())
    connection.execute(
        hourly_category_rollup.insert().from_select(
            ["hour", "category", "variant", *CATEGORY_COUNTERS], totals
        )
    )


def window_totals(since: datetime | None) -> sa.CompoundSelect[Any] | sa.Select[Any]:
    """Counters per (variant, latency bucket) over generations created at or after `since`.

    The rollup answers the hours after since's hour; since's own hour, cut at `since`, comes
    from the raw rows (at most an hour of them, through the `created_at` indexes). Its votes
    carry no latency bucket: they come back in bucket 0, with no requests.
    """
    sums = [sa.func.sum(hourly_rollup.c[name]).label(name) for name in COUNTERS]
    full_hours = sa.select(hourly_rollup.c.variant, hourly_rollup.c.latency_bucket, *sums)
    by_bucket = [hourly_rollup.c.variant, hourly_rollup.c.latency_bucket]
    if since is None:
        return full_hours.group_by(*by_bucket)
    edge_hour = hour_of(since)
    edge_end = hour_start(edge_hour + 1)
    full_hours = full_hours.where(hourly_rollup.c.hour > edge_hour).group_by(*by_bucket)
    edge = (
        sa.select(
            generations.c.variant,
            latency_bucket_sql(generations.c.latency_total_ms).label("latency_bucket"),
            generations.c.error_code,
            generations.c.strategy,
        )
        .where(generations.c.created_at >= since, generations.c.created_at < edge_end)
        .subquery("edge")
    )
    zero = sa.literal_column("0", sa.Integer)
    edge_generations = _counted(
        edge,
        failed=edge.c.error_code.is_not(None),
        weighted=edge.c.strategy == WEIGHTED_STRATEGY,
        up=zero,
        down=zero,
        group_by=[edge.c.variant, edge.c.latency_bucket],
    )
    edge_votes = (
        sa.select(
            votes.c.variant,
            zero.label("latency_bucket"),
            zero.label("requests"),
            zero.label("errors"),
            zero.label("weighted_requests"),
            sa.func.count().filter(votes.c.vote == Vote.UP.value).label("up"),
            sa.func.count().filter(votes.c.vote == Vote.DOWN.value).label("down"),
        )
        .where(votes.c.generation_created_at >= since, votes.c.generation_created_at < edge_end)
        .group_by(votes.c.variant)
    )
    return sa.union_all(full_hours, edge_generations, edge_votes)


def category_window_totals(since: datetime | None) -> sa.CompoundSelect[Any] | sa.Select[Any]:
    """`CATEGORY_COUNTERS` per (category, variant) over generations created at or after `since`:
    the full hours after since's hour from `hourly_category_rollup`, since's own hour, cut at
    `since`, from the raw rows (as `window_totals`, its votes joined to their generations for
    the category)."""
    table = hourly_category_rollup
    sums = [sa.func.sum(table.c[name]).label(name) for name in CATEGORY_COUNTERS]
    by_category = [table.c.category, table.c.variant]
    full_hours = sa.select(*by_category, *sums)
    if since is None:
        return full_hours.group_by(*by_category)
    edge_hour = hour_of(since)
    edge_end = hour_start(edge_hour + 1)
    full_hours = full_hours.where(table.c.hour > edge_hour).group_by(*by_category)
    zero = sa.literal_column("0", sa.Integer)
    category = category_sql(generations.c.category_label)
    edge_generations = (
        sa.select(
            category.label("category"),
            generations.c.variant,
            sa.func.count().label("requests"),
            sa.func.count().filter(generations.c.error_code.is_not(None)).label("errors"),
            zero.label("up"),
            zero.label("down"),
        )
        .where(generations.c.created_at >= since, generations.c.created_at < edge_end)
        .group_by(category, generations.c.variant)
    )
    # Driven from the edge hour's generations (by `created_at`, which each vote copies), their
    # votes found by the votes' primary key: a plan PostgreSQL does not hand to parallel workers,
    # whose start-up would cost more than the query (driven from `votes`, it did).
    edge_votes = (
        sa.select(
            category.label("category"),
            generations.c.variant,
            zero.label("requests"),
            zero.label("errors"),
            sa.func.count().filter(votes.c.vote == Vote.UP.value).label("up"),
            sa.func.count().filter(votes.c.vote == Vote.DOWN.value).label("down"),
        )
        .select_from(generations.join(votes, votes.c.generation_id == generations.c.id))
        .where(generations.c.created_at >= since, generations.c.created_at < edge_end)
        .group_by(category, generations.c.variant)
    )
    return sa.union_all(full_hours, edge_generations, edge_votes)
