"""Generations and votes.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "generations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_hash", sa.String(64), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("variant", sa.String(32), nullable=False),
        sa.Column("model_name", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column(
            "parameters",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("category_label", sa.String(32), nullable=True),
        sa.Column("category_score", sa.Float(), nullable=True),
        sa.Column("latency_model_ms", sa.Float(), nullable=False),
        sa.Column("latency_classifier_ms", sa.Float(), nullable=True),
        sa.Column("latency_total_ms", sa.Float(), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
    )
    op.create_index("ix_generations_created_at_variant", "generations", ["created_at", "variant"])
    op.create_index(
        "ix_generations_variant_latency",
        "generations",
        ["variant", "latency_total_ms"],
        postgresql_include=["created_at", "error_code", "strategy"],
    )
    op.create_table(
        "votes",
        sa.Column("generation_id", sa.String(64), nullable=False),
        sa.Column("user_hash", sa.String(64), nullable=False),
        sa.Column("vote", sa.String(4), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("variant", sa.String(32), nullable=False),
        sa.Column("generation_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("generation_id", "user_hash"),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name="fk_votes_generation_id",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("vote IN ('up', 'down')", name="ck_votes_vote"),
    )
    op.create_index("ix_votes_window", "votes", ["generation_created_at", "variant", "vote"])


def downgrade() -> None:
    op.drop_index("ix_votes_window", table_name="votes")
    op.drop_table("votes")
    op.drop_index("ix_generations_variant_latency", table_name="generations")
    op.drop_index("ix_generations_created_at_variant", table_name="generations")
    op.drop_table("generations")
