"""Readers' votes as a training set: what each reader saw, the model that wrote it, the vote."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pressroom_common.feedback.store import StoreUnavailableError, VotedGeneration, open_store
from pressroom_common.platform.errors import DomainError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from training.feedback import RetrainRefused

# One voted generation in ten is held out of training to decide when to stop.
VALIDATION_SHARE = 10


def load_votes(database_url: str) -> list[VotedGeneration]:
    """Every vote in the store at `database_url`, oldest first; a store that cannot be read is
    a refusal naming it (the password hidden)."""
    try:
        shown = make_url(database_url).render_as_string(hide_password=True)
    except ArgumentError:
        raise RetrainRefused(f"--database-url {database_url!r} is not a database URL") from None
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        # Opening it would create an empty database: refuse, and write nothing.
        raise RetrainRefused(f"no feedback store at {url.database}: run `pressroom up` first")
    try:
        return open_store(database_url).voted_generations()
    except StoreUnavailableError as error:
        raise RetrainRefused(
            f"cannot read the votes: the feedback store at {shown} is unavailable "
            f"({error.__cause__ or error.message})"
        ) from None
    except DomainError as error:
        raise RetrainRefused(f"cannot read the votes from {shown}: {error.message}") from None


@dataclass(frozen=True)
class VoteCounts:
    up: int
    down: int

    @property
    def total(self) -> int:
        return self.up + self.down


def count(votes: Sequence[VotedGeneration]) -> VoteCounts:
    up = sum(1 for vote in votes if vote.vote.value == "up")
    return VoteCounts(up=up, down=len(votes) - up)


def held_out_generations(votes: Sequence[VotedGeneration]) -> set[str]:
    """The voted generations kept out of training to decide when to stop: one in
    `VALIDATION_SHARE` (at least one), chosen by a hash of the id so the same votes always hold
    out the same ones, and every vote on a generation on the same side."""
    voted = sorted(
        {vote.generation_id for vote in votes},
        key=lambda generation_id: hashlib.sha256(generation_id.encode()).hexdigest(),
    )
    return set(voted[: max(1, len(voted) // VALIDATION_SHARE)])


def training_set_sha256(votes: Sequence[VotedGeneration]) -> str:
    """A hash of exactly what training reads: each vote's generation, prompt, text, model and
    vote, in order. The same votes give the same hash; any change gives another."""
    digest = hashlib.sha256()
    for vote in votes:
        record = [
            vote.generation_id,
            vote.prompt,
            vote.text,
            vote.model_name,
            vote.model_version,
            vote.vote.value,
        ]
        digest.update(json.dumps(record, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


def by_model(votes: Sequence[VotedGeneration]) -> dict[str, int]:
    """Votes per model that wrote the voted text, as `name version`."""
    counts = Counter(f"{vote.model_name} {vote.model_version}" for vote in votes)
    return dict(sorted(counts.items()))
