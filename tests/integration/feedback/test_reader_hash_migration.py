"""Migration 0003: the bare SHA-256 reader hashes of earlier rows are re-keyed, on every backend."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import command
from pressroom_common.feedback.store import open_store
from pressroom_common.feedback.store.migrations import alembic_config
from pressroom_common.feedback.store.schema import generations, votes
from pressroom_common.platform.readers import ANONYMOUS_READER

from tests.fixtures.feedback import GenerationFactory, vote_row


def sha256(reader_id: str) -> str:
    return hashlib.sha256(reader_id.encode()).hexdigest()


def test_earlier_hashes_are_re_keyed_and_stay_joinable_among_themselves(
    store_url: str, make_generation: GenerationFactory
) -> None:
    # What 0001-0002 stored: sha256 of the id ("anonymous" for a request without one).
    served = {"g-alice-1": "alice", "g-alice-2": "alice", "g-bob": "bob", "g-anon": "anonymous"}
    records = [make_generation(id=id_, user_hash=sha256(who)) for id_, who in served.items()]
    engine = open_store(store_url).engine
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0002")
        connection.execute(generations.insert(), [record.model_dump() for record in records])
        connection.execute(
            votes.insert(), [vote_row(record) for record in records if record.id != "g-anon"]
        )
    engine.dispose()

    store = open_store(store_url, migrate=True)
    with store.engine.connect() as connection:
        rows = connection.execute(sa.select(generations.c.id, generations.c.user_hash))
        now = {generation_id: user_hash for generation_id, user_hash in rows}
        voted = connection.execute(
            sa.select(votes.c.generation_id, votes.c.user_hash, generations.c.user_hash).join(
                generations, generations.c.id == votes.c.generation_id
            )
        ).all()
        tables = set(sa.inspect(connection).get_table_names())
    store.engine.dispose()

    assert not {sha256(who) for who in served.values()} & set(now.values())
    assert now["g-alice-1"] == now["g-alice-2"] != now["g-bob"]
    assert len(now["g-bob"]) == 64
    assert now["g-anon"] == ANONYMOUS_READER
    # Each vote still belongs to the reader of its generation; nothing was lost.
    assert len(voted) == 3
    assert all(vote_hash == generation_hash for _, vote_hash, generation_hash in voted)
    assert "reader_hash_rekey" not in tables  # the mapping (and its key) are gone
