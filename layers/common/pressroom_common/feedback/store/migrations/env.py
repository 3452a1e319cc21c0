"""Alembic environment: migrations run on the connection the store hands over."""

from alembic import context
from sqlalchemy import text

from pressroom_common.feedback.store.migrations import MIGRATION_LOCK_ID
from pressroom_common.feedback.store.schema import metadata

connection = context.config.attributes["connection"]
if connection is None:
    raise RuntimeError(
        "run migrations through pressroom_common.feedback.store.migrations.upgrade_to_head"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
if connection.dialect.name == "postgresql":
    connection.execute(
        text("SELECT pg_advisory_xact_lock(:lock_id)"), {"lock_id": MIGRATION_LOCK_ID}
    )
with context.begin_transaction():
    context.run_migrations()
