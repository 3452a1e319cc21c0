"""The hourly rollup behind statistics, backfilled from the rows already stored.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pressroom_common.feedback.store import rollup

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hourly_rollup",
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(32), nullable=False),
        sa.Column("latency_bucket", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("weighted_requests", sa.Integer(), nullable=False),
        sa.Column("up", sa.Integer(), nullable=False),
        sa.Column("down", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("variant", "latency_bucket", "hour"),
        sqlite_with_rowid=False,
    )
    # The same backfill bulk loads run: one definition of the rollup (this table's part of it:
    # the category rollup comes with 0004).
    rollup.rebuild_hourly(op.get_bind())


def downgrade() -> None:
    op.drop_table("hourly_rollup")
