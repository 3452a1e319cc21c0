"""Reader hashes that cannot be reversed by guessing: re-key the bare SHA-256 of earlier rows.

Rows written before this revision hold `sha256(reader id)`, which anyone can recompute from a
guessed id (an email, say). New rows hold an HMAC keyed by the reader key
(`pressroom_common.platform.readers`). This revision replaces each old hash with an HMAC under a
**one-time random key that is discarded when the migration ends**, not under the reader key:
- old rows stay joinable among themselves: every row of one earlier reader gets the same new
  value, so their votes still match their generations and the one-vote-per-reader key holds;
- what it gives up is joining an old row to the same reader's rows written after the upgrade,
  which nothing reads: a vote needs the generation's vote token, which no earlier generation
  carried, and sticky routing hashes the id afresh on every request;
- so the migration needs no access to the reader key, and the function that runs migrations on
  a deploy is granted none.
The anonymous reader's old hash becomes the store's `anonymous` marker. Irreversible by design:
downgrading cannot bring back the hashes it discarded. The functions update after the
migration (they depend on it), so only what the previous release writes in the seconds between
keeps a bare hash.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

import hashlib
import hmac
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here, as a migration must be: what 0001-0002 stored for a request without an id, and
# the marker the store keeps for it from now on.
EARLIER_ANONYMOUS_HASH = hashlib.sha256(b"anonymous").hexdigest()
ANONYMOUS_READER = "anonymous"
REKEY_TABLE = "reader_hash_rekey"


def upgrade() -> None:
    connection = op.get_bind()
    earlier = sa.text("SELECT user_hash FROM generations UNION SELECT user_hash FROM votes")
    hashes = list(connection.execute(earlier).scalars())
    if not hashes:
        return
    one_time_key = secrets.token_bytes(32)
    rekey = op.create_table(
        REKEY_TABLE,
        sa.Column("old_hash", sa.String(64), primary_key=True),
        sa.Column("new_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(
        rekey,
        [{"old_hash": old, "new_hash": _rekeyed(old, one_time_key)} for old in hashes],
    )
    # One pass per table, each row finding its new value through the mapping's primary key.
    for name in ("generations", "votes"):
        table = sa.table(name, sa.column("user_hash"))
        new_hash = (
            sa.select(rekey.c.new_hash)
            .where(rekey.c.old_hash == table.c.user_hash)
            .scalar_subquery()
        )
        connection.execute(sa.update(table).values(user_hash=new_hash))
    op.drop_table(REKEY_TABLE)


def _rekeyed(old_hash: str, key: bytes) -> str:
    if old_hash == EARLIER_ANONYMOUS_HASH:
        return ANONYMOUS_READER
    return hmac.new(key, old_hash.encode("ascii"), hashlib.sha256).hexdigest()


def downgrade() -> None:
    raise NotImplementedError("0003 discarded the key it re-keyed reader hashes with")
