"""Database URLs → SQLAlchemy engines tuned per backend.

Accepted URLs:
- `sqlite:///path/to/feedback.sqlite` (local default; `sqlite://` is in memory)
- `postgresql+psycopg://user:password@host:port/database` (`postgresql://` means the same)
- `postgresql+auroradataapi://:@/<database>?aurora_cluster_arn=<ARN>&secret_arn=<ARN>`
  (Aurora through the RDS Data API; the Lambda needs no VPC and holds no connection)
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import registry
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

AURORA_DRIVER = "auroradataapi"
CONNECT_TIMEOUT_S = 5
SQLITE_BUSY_TIMEOUT_S = 30

registry.register(
    f"postgresql.{AURORA_DRIVER}", "sqlalchemy_aurora_data_api", "AuroraPostgresDataAPIDialect"
)


def create_store_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    if parsed.get_backend_name() == "postgresql":
        if parsed.get_driver_name() == AURORA_DRIVER:
            return _aurora_engine(parsed)
        return _postgresql_engine(parsed.set(drivername="postgresql+psycopg"))
    raise ValueError(
        f"database URL: unsupported backend {parsed.drivername!r}; "
        "use sqlite:///, postgresql+psycopg:// or postgresql+auroradataapi://"
    )


def _sqlite_engine(url: URL) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    options: dict[str, Any] = {
        "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
    }
    if in_memory:
        # One shared connection, or every checkout would see its own empty database.
        options["poolclass"] = StaticPool
    engine = sa.create_engine(url, **options)

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        if not in_memory:
            # Readers do not block the writer; concurrent writers wait up to the busy timeout.
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    return engine


def _postgresql_engine(url: URL) -> Engine:
    # pre_ping replaces connections that a database restart closed, instead of failing on them.
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        pool_timeout=CONNECT_TIMEOUT_S,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )


def _aurora_engine(url: URL) -> Engine:
    missing = [key for key in ("aurora_cluster_arn", "secret_arn") if not url.query.get(key)]
    if missing or not url.database:
        raise ValueError(
            "database URL: the Aurora form needs a database name and "
            f"{' and '.join(missing) or 'both ARNs'} as query parameters"
        )
    # Each "connection" is a Data API client holding at most one transaction id; nothing to ping.
    return sa.create_engine(url)
