"""An empty, migrated feedback store on SQLite and on the real PostgreSQL.

These tests drive thousands of small transactions and check statistics, not durability, so
SQLite is in memory and PostgreSQL commits without waiting for the WAL flush (a libpq
connection option; the store code is unchanged).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pressroom_common.feedback.store import FeedbackStore, open_store

ASYNCHRONOUS_COMMIT = "?options=-c%20synchronous_commit%3Doff"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def experiment_store(request: pytest.FixtureRequest) -> Iterator[FeedbackStore]:
    url = (
        "sqlite://"
        if request.param == "sqlite"
        else str(request.getfixturevalue("postgres_url")) + ASYNCHRONOUS_COMMIT
    )
    store = open_store(url, migrate=True)
    yield store
    store.engine.dispose()
