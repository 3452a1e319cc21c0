"""What the feedback store holds after a run: every acknowledged vote, and no partial record.

Reads the store's own tables (`pressroom_common.feedback.store.schema`) with a separate
engine, the way an operator would audit the database after an incident.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from pressroom_common.feedback.store.schema import generations, votes

from qa.reliability.load import AcknowledgedVote


@contextmanager
def _connection(database_url: str) -> Iterator[sa.Connection]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


@dataclass(frozen=True)
class VoteAudit:
    acknowledged: int
    stored: int
    missing: tuple[AcknowledgedVote, ...]
    """Acknowledged (2xx) but absent from the store, or stored with another value."""

    @property
    def all_accounted_for(self) -> bool:
        return not self.missing and self.stored == self.acknowledged


def audit_votes(database_url: str, acknowledged: Iterable[AcknowledgedVote]) -> VoteAudit:
    """Compare the acknowledged votes with the store's votes on the same generations.

    Each generation of a run gets one vote, from the reader it was served to (the only one who
    may vote on it: a stored vote by anyone else would be a breach, so it is not counted as
    stored), so the two sets must be equal.
    """
    expected = {(vote.generation_id, vote.vote): vote for vote in acknowledged}
    generation_ids = sorted({generation_id for generation_id, _ in expected})
    stored: set[tuple[str, str]] = set()
    with _connection(database_url) as connection:
        # Chunks keep the IN list within every backend's parameter limit.
        for start in range(0, len(generation_ids), 500):
            chunk = generation_ids[start : start + 500]
            rows = connection.execute(
                sa.select(votes.c.generation_id, votes.c.vote)
                .join(generations, generations.c.id == votes.c.generation_id)
                .where(
                    votes.c.generation_id.in_(chunk),
                    votes.c.user_hash == generations.c.user_hash,
                )
            )
            stored.update((row[0], str(row[1])) for row in rows)
    missing = tuple(vote for key, vote in expected.items() if key not in stored)
    return VoteAudit(acknowledged=len(expected), stored=len(stored), missing=missing)


@dataclass(frozen=True)
class RowCounts:
    generations: int
    votes: int


def row_counts(database_url: str) -> RowCounts:
    with _connection(database_url) as connection:
        return RowCounts(
            generations=connection.execute(
                sa.select(sa.func.count()).select_from(generations)
            ).scalar_one(),
            votes=connection.execute(sa.select(sa.func.count()).select_from(votes)).scalar_one(),
        )


def partial_generations(database_url: str) -> int:
    """Generations recorded as served (no error code) without the model or timings that a
    served response always has; a failed request is recorded with its error code instead."""
    with _connection(database_url) as connection:
        return int(
            connection.execute(
                sa.select(sa.func.count())
                .select_from(generations)
                .where(
                    generations.c.error_code.is_(None),
                    sa.or_(
                        generations.c.model_version == "",
                        generations.c.strategy == "",
                        generations.c.latency_total_ms <= 0,
                    ),
                )
            ).scalar_one()
        )


def stored_prompts(database_url: str, prompts: Iterable[str]) -> dict[str, str]:
    """`prompt → text` of the generations stored for these exact prompts (round-trip checks)."""
    wanted = list(prompts)
    with _connection(database_url) as connection:
        rows = connection.execute(
            sa.select(generations.c.prompt, generations.c.text).where(
                generations.c.prompt.in_(wanted)
            )
        )
        return {str(row[0]): str(row[1]) for row in rows}
