"""The hourly rollup by category behind the verdict by category, backfilled from the rows
already stored.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pressroom_common.feedback.store import rollup

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hourly_category_rollup",
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("variant", sa.String(32), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("up", sa.Integer(), nullable=False),
        sa.Column("down", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("category", "variant", "hour"),
        sqlite_with_rowid=False,
    )
    # The same backfill bulk loads run: one definition of the rollup.
    rollup.rebuild_categories(op.get_bind())


def downgrade() -> None:
    op.drop_table("hourly_category_rollup")
