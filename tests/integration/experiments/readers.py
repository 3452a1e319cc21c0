"""Synthetic readers driven straight through the real router and the real feedback store.

Each reader is a new user: the router assigns a variant, the generation is recorded, and the
reader votes up with the true up-rate of that variant. A fake clock moves one second per
reader, so Thompson sampling's count cache refreshes on a known schedule.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pressroom_common.routing import Router
from pressroom_common.settings import VariantConfig
from pressroom_common.store import FeedbackStore, GenerationRecord
from pressroom_common.users import hash_user_id

VARIANTS = {
    "A": VariantConfig(
        endpoint_name="pressroom-test-headline",
        model_name="headline-base",
        model_version="v1",
        weight=1,
    ),
    "B": VariantConfig(
        endpoint_name="pressroom-test-headline",
        model_name="headline-lite",
        model_version="v1",
        weight=1,
    ),
}
TRUE_RATES = {"A": 0.60, "B": 0.50}
STARTED_AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def serve_readers(
    router: Router,
    store: FeedbackStore,
    count: int,
    *,
    seed: int,
    clock: FakeClock,
    true_rates: Mapping[str, float] = TRUE_RATES,
) -> list[str]:
    """Serve and collect a vote from `count` readers; return the variant each one got."""
    votes = random.Random(seed)
    served = []
    for index in range(count):
        user_hash = hash_user_id(f"reader-{seed}-{index}")
        assignment = router.assign(user_hash)
        variant = router.variant(assignment.variant)
        generation_id = f"gen-{seed}-{index:06d}"
        store.record_generation(
            GenerationRecord(
                id=generation_id,
                created_at=STARTED_AT + timedelta(seconds=clock.now),
                user_hash=user_hash,
                prompt="Markets rally as",
                text="rates hold",
                variant=assignment.variant,
                model_name=variant.model_name,
                model_version=variant.model_version,
                strategy=assignment.strategy,
                latency_model_ms=40.0,
                latency_total_ms=50.0,
            )
        )
        vote = "up" if votes.random() < true_rates[assignment.variant] else "down"
        store.record_vote(generation_id, user_hash, vote)
        served.append(assignment.variant)
        clock.now += 1.0
    return served
