"""Alembic migrations: the one definition of the feedback schema.

They ship inside the Lambda layer, so the deploy-time custom resource and local runs apply the
same files; `upgrade_to_head` needs no alembic.ini.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

MIGRATIONS_DIRECTORY = Path(__file__).resolve().parent
# PostgreSQL advisory lock held while migrating: concurrent deploys or local starts take turns.
MIGRATION_LOCK_ID = 7_042_024


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIRECTORY))
    config.attributes["connection"] = connection
    return config


def upgrade_to_head(connection: Connection) -> None:
    """Apply every migration not yet applied, inside the caller's transaction (idempotent)."""
    command.upgrade(alembic_config(connection), "head")
