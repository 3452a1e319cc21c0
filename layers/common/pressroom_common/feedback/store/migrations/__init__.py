"""Alembic migrations: the one definition of the feedback schema.

They ship inside the Lambda layer, so the deploy-time custom resource and local runs apply the
same files; `upgrade_to_head` needs no alembic.ini.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection

MIGRATIONS_DIRECTORY = Path(__file__).resolve().parent
# PostgreSQL advisory lock held while migrating: concurrent deploys or local starts take turns.
MIGRATION_LOCK_ID = 7_042_024


@dataclass(frozen=True)
class MigrationResult:
    """Where the schema stands after `upgrade_to_head`."""

    code_head: str
    """The newest revision these migrations know."""
    revisions: tuple[str, ...]
    """The database's revision(s) now; () only for a database that was never migrated."""
    ahead: bool
    """The database is at a revision these migrations do not know: a newer release migrated it
    (typically, this is that release's rollback). It was left exactly as it was."""


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIRECTORY))
    config.attributes["connection"] = connection
    return config


def upgrade_to_head(connection: Connection) -> MigrationResult:
    """Apply every migration not yet applied, inside the caller's transaction (idempotent).

    Never downgrades: a database already at a revision these files do not know belongs to a
    newer release, and is left as it is (its data and its newer schema), reported as `ahead`.
    Migrations are additive, so the older code keeps working on the newer schema.
    """
    config = alembic_config(connection)
    script = ScriptDirectory.from_config(config)
    code_head = script.get_current_head() or ""
    if connection.dialect.name == "postgresql":
        # The same lock env.py takes, held from this read to the upgrade (transaction-scoped).
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:lock_id)"), {"lock_id": MIGRATION_LOCK_ID}
        )
    current = _revisions(connection)
    if any(not _known(script, revision) for revision in current):
        return MigrationResult(code_head, current, ahead=True)
    command.upgrade(config, "head")
    return MigrationResult(code_head, _revisions(connection), ahead=False)


def _revisions(connection: Connection) -> tuple[str, ...]:
    return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False
