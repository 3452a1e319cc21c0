"""SQLAlchemy Core tables: what queries are written against.

The database itself is created and changed only by the Alembic migrations in `migrations/`;
a test checks that applying them yields exactly these tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always read back timezone-aware.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones, so it stores naive UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # The Data API driver may hand back text.
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# JSONB on PostgreSQL (and Aurora), JSON text on SQLite.
Parameters = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

generations = sa.Table(
    "generations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("user_hash", sa.String(64), nullable=False),
    sa.Column("prompt", sa.Text(), nullable=False),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("variant", sa.String(32), nullable=False),
    sa.Column("model_name", sa.String(64), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("strategy", sa.String(32), nullable=False),
    sa.Column("parameters", Parameters, nullable=False),
    sa.Column("category_label", sa.String(32), nullable=True),
    sa.Column("category_score", sa.Float(), nullable=True),
    sa.Column("latency_model_ms", sa.Float(), nullable=False),
    sa.Column("latency_classifier_ms", sa.Float(), nullable=True),
    sa.Column("latency_total_ms", sa.Float(), nullable=False),
    sa.Column("error_code", sa.String(64), nullable=True),
    # Stats filter on a time window and group by variant...
    sa.Index("ix_generations_created_at_variant", "created_at", "variant"),
    # ...and read each variant's latencies in order (percentiles) from the index alone.
    sa.Index(
        "ix_generations_variant_latency",
        "variant",
        "latency_total_ms",
        postgresql_include=["created_at", "error_code", "strategy"],
    ),
)

votes = sa.Table(
    "votes",
    metadata,
    sa.Column(
        "generation_id",
        sa.String(64),
        sa.ForeignKey("generations.id", ondelete="CASCADE", name="fk_votes_generation_id"),
        primary_key=True,
    ),
    # One vote per generation and user: the primary key is the unique constraint upserts hit.
    sa.Column("user_hash", sa.String(64), primary_key=True),
    sa.Column("vote", sa.String(4), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    # Copied from the generation (which never changes) so that counting votes per variant and
    # time window reads this table's index alone instead of joining a million rows.
    sa.Column("variant", sa.String(32), nullable=False),
    sa.Column("generation_created_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint("vote IN ('up', 'down')", name="ck_votes_vote"),
    sa.Index("ix_votes_window", "generation_created_at", "variant", "vote"),
)

# What statistics read instead of the raw rows (see `rollup`): counters per hour of the
# generation's creation, variant and latency bucket, kept by the store in each write's transaction.
hourly_rollup = sa.Table(
    "hourly_rollup",
    metadata,
    sa.Column("hour", sa.Integer(), nullable=False),  # hours since the Unix epoch (UTC)
    sa.Column("variant", sa.String(32), nullable=False),
    sa.Column("latency_bucket", sa.Integer(), nullable=False),
    sa.Column("requests", sa.Integer(), nullable=False),
    sa.Column("errors", sa.Integer(), nullable=False),
    sa.Column("weighted_requests", sa.Integer(), nullable=False),
    sa.Column("up", sa.Integer(), nullable=False),
    sa.Column("down", sa.Integer(), nullable=False),
    # In the order statistics group by: SQLite then aggregates while it scans, without sorting
    # (the rows are the primary key's b-tree there); a window's hours are a filter on the scan.
    sa.PrimaryKeyConstraint("variant", "latency_bucket", "hour"),
    sqlite_with_rowid=False,
)

# The verdict by category reads this: the same counters per hour of the generation's creation,
# classifier category and variant, with no latency bucket (a few rows an hour). A generation
# without a category (the classifier abstained or did not answer, or the generation failed) is
# counted under `rollup.UNCATEGORISED` (''), since a primary key column cannot be null.
hourly_category_rollup = sa.Table(
    "hourly_category_rollup",
    metadata,
    sa.Column("hour", sa.Integer(), nullable=False),  # hours since the Unix epoch (UTC)
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("variant", sa.String(32), nullable=False),
    sa.Column("requests", sa.Integer(), nullable=False),
    sa.Column("errors", sa.Integer(), nullable=False),
    sa.Column("up", sa.Integer(), nullable=False),
    sa.Column("down", sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint("category", "variant", "hour"),
    sqlite_with_rowid=False,
)
