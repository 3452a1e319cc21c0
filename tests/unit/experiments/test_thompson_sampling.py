"""Thompson sampling: warm-up by the weights, then the posterior draws; counts are cached."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from pressroom_common.experiment.adaptive import ThompsonSampling
from pressroom_common.experiment.routing import FixedWeights, Router, build_strategy
from pressroom_common.experiment.settings import ThompsonParameters
from pressroom_common.feedback.store import (
    FeedbackStore,
    GenerationRecord,
    StoreUnavailableError,
    open_store,
)

from tests.fixtures.experiments import VARIANTS, FakeClock
from tests.fixtures.readers import reader_hash


class CountingStore:
    """The real store, counting how often routing reads the vote counts."""

    def __init__(self, store: FeedbackStore) -> None:
        self.store = store
        self.reads = 0
        self.down = False

    def variant_counts(self, since: datetime | None = None) -> dict[str, tuple[int, int, int]]:
        self.reads += 1
        if self.down:
            raise StoreUnavailableError("the vote counts")
        return self.store.variant_counts(since)


@pytest.fixture
def store() -> FeedbackStore:
    return open_store("sqlite://", migrate=True)


def record(
    store: FeedbackStore,
    variant: str,
    count: int,
    *,
    up: int,
    at: datetime = datetime(2026, 3, 1, tzinfo=UTC),
) -> None:
    """`count` impressions of `variant` at `at`, the first `up` of them voted up, the rest down."""
    for index in range(count):
        generation_id = f"{variant}-{at:%Y%m%d%H%M}-{index}"
        store.record_generation(
            GenerationRecord(
                id=generation_id,
                created_at=at,
                user_hash="u" * 64,
                prompt="p",
                text="t",
                variant=variant,
                model_name=VARIANTS[variant].model_name,
                model_version="v1",
                strategy="thompson",
                latency_model_ms=1,
                latency_total_ms=1,
            )
        )
        store.record_vote(generation_id, "u" * 64, "up" if index < up else "down")


def thompson(
    counts: CountingStore, clock: FakeClock, warmup: int = 10, top_two: float = 1.0
) -> ThompsonSampling:
    """Plain Thompson sampling (`top_two` 1.0) unless a test asks for the top-two split."""
    return ThompsonSampling(
        counts,
        FixedWeights(rng=random.Random(1)),
        ThompsonParameters(warmup_votes=warmup, top_two_probability=top_two, refresh_s=5.0),
        rng=random.Random(2),
        clock=clock,
        run_refresh=lambda refresh: refresh(),  # in the request: deterministic counts
    )


def test_before_the_warm_up_traffic_follows_the_sticky_weights(store: FeedbackStore) -> None:
    record(store, "A", 50, up=50)  # A looks perfect, but B has no impressions yet
    strategy = thompson(CountingStore(store), FakeClock(), warmup=10)
    router = Router(strategy, VARIANTS)
    weighted = Router(FixedWeights(), VARIANTS)
    users = [reader_hash(f"reader-{n}") for n in range(200)]

    assert [router.assign(u).variant for u in users] == [weighted.assign(u).variant for u in users]
    assert router.assign(users[0]).strategy == "thompson"


def test_after_the_warm_up_a_clearly_better_variant_gets_almost_all_traffic(
    store: FeedbackStore,
) -> None:
    record(store, "A", 40, up=32)
    record(store, "B", 40, up=8)
    router = Router(thompson(CountingStore(store), FakeClock()), VARIANTS)

    shares = Counter(router.assign(reader_hash(f"r{n}")).variant for n in range(300))

    assert shares["A"] >= 295


def test_top_two_sampling_keeps_the_runner_up_in_play_until_the_round_is_decided(
    store: FeedbackStore,
) -> None:
    record(store, "A", 40, up=32)
    record(store, "B", 40, up=8)
    router = Router(thompson(CountingStore(store), FakeClock(), top_two=0.5), VARIANTS)

    shares = Counter(router.assign(None).variant for _ in range(400))

    # A leads almost every draw, so it serves about half, and B (the runner-up) the other half.
    assert 160 <= shares["B"] <= 240


def test_a_variant_of_few_votes_is_still_in_warm_up_however_many_impressions_it_had(
    store: FeedbackStore,
) -> None:
    record(store, "A", 40, up=40)
    for index in range(40):  # B served 40 readers, but none of them voted
        store.record_generation(
            GenerationRecord(
                id=f"unvoted-{index}",
                created_at=datetime(2026, 3, 1, tzinfo=UTC),
                user_hash="u" * 64,
                prompt="p",
                text="t",
                variant="B",
                model_name=VARIANTS["B"].model_name,
                model_version="v1",
                strategy="thompson",
                latency_model_ms=1,
                latency_total_ms=1,
            )
        )
    router = Router(thompson(CountingStore(store), FakeClock(), warmup=10), VARIANTS)
    weighted = Router(FixedWeights(), VARIANTS)
    users = [reader_hash(f"reader-{n}") for n in range(100)]

    assert [router.assign(u).variant for u in users] == [weighted.assign(u).variant for u in users]


def test_an_uncertain_comparison_keeps_exploring_both_variants(store: FeedbackStore) -> None:
    record(store, "A", 12, up=6)
    record(store, "B", 12, up=5)
    router = Router(thompson(CountingStore(store), FakeClock()), VARIANTS)

    shares = Counter(router.assign(None).variant for _ in range(300))

    assert shares["A"] > 60 and shares["B"] > 60


def test_vote_counts_are_read_at_most_once_per_refresh_interval(store: FeedbackStore) -> None:
    counts = CountingStore(store)
    clock = FakeClock()
    router = Router(thompson(counts, clock), VARIANTS)

    for _ in range(100):
        router.assign(None)
    clock.now += 4.9
    router.assign(None)
    assert counts.reads == 1
    clock.now += 0.1
    router.assign(None)
    assert counts.reads == 2


def test_a_request_never_waits_for_the_counts_it_starts_one_refresh_off_its_path(
    store: FeedbackStore,
) -> None:
    record(store, "A", 50, up=50)
    record(store, "B", 50, up=0)
    counts, clock, pending = CountingStore(store), FakeClock(), []
    strategy = ThompsonSampling(
        counts,
        FixedWeights(rng=random.Random(1)),
        ThompsonParameters(warmup_votes=10, top_two_probability=1.0, refresh_s=5.0),
        rng=random.Random(2),
        clock=clock,
        run_refresh=pending.append,  # started, not yet run
    )
    router = Router(strategy, VARIANTS)
    weighted = Router(FixedWeights(rng=random.Random(1)), VARIANTS)

    before = [router.assign(None).variant for _ in range(200)]
    assert counts.reads == 0 and len(pending) == 1, "one refresh started, none run in a request"
    assert before == [weighted.assign(None).variant for _ in range(200)], "weights meanwhile"

    pending.pop()()  # the background refresh completes
    after = Counter(router.assign(None).variant for _ in range(200))
    assert counts.reads == 1 and not pending
    assert after["A"] > 190


def test_a_store_outage_keeps_routing_on_the_last_counts(store: FeedbackStore) -> None:
    record(store, "A", 40, up=36)
    record(store, "B", 40, up=4)
    counts = CountingStore(store)
    clock = FakeClock()
    router = Router(thompson(counts, clock), VARIANTS)
    router.assign(None)

    counts.down = True
    clock.now += 10
    shares = Counter(router.assign(None).variant for _ in range(100))

    assert shares["A"] >= 98
    assert counts.reads == 2  # one failed refresh, not one per request


def test_a_store_that_was_never_readable_routes_by_the_weights(store: FeedbackStore) -> None:
    counts = CountingStore(store)
    counts.down = True
    router = Router(thompson(counts, FakeClock()), VARIANTS)

    assert {router.assign(reader_hash(f"u{n}")).variant for n in range(100)} == {"A", "B"}


def test_a_zero_weight_variant_is_out_of_the_experiment(store: FeedbackStore) -> None:
    record(store, "A", 20, up=2)
    record(store, "B", 20, up=19)
    variants = {**VARIANTS, "B": VARIANTS["B"].model_copy(update={"weight": 0})}
    router = Router(thompson(CountingStore(store), FakeClock()), variants)

    assert {router.assign(None).variant for _ in range(50)} == {"A"}


def test_the_deployment_setting_builds_thompson_sampling_over_the_store(
    store: FeedbackStore,
) -> None:
    assert build_strategy("thompson", counts=store).name == "thompson"
    with pytest.raises(ValueError, match="vote counts"):
        build_strategy("thompson")


def test_without_a_warm_up_a_variant_with_no_votes_yet_is_still_drawn(
    store: FeedbackStore,
) -> None:
    record(store, "A", 5, up=1)
    router = Router(thompson(CountingStore(store), FakeClock(), warmup=0), VARIANTS)

    assert {router.assign(None).variant for _ in range(100)} == {"A", "B"}


def test_a_new_round_counts_only_its_own_votes(store: FeedbackStore) -> None:
    round_start = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    # Round one: B (then headline-lite) did badly. Round two: B is a challenger readers prefer.
    record(store, "A", 40, up=30, at=round_start - timedelta(hours=3))
    record(store, "B", 40, up=5, at=round_start - timedelta(hours=3))
    record(store, "A", 40, up=12, at=round_start + timedelta(minutes=5))
    record(store, "B", 40, up=34, at=round_start + timedelta(minutes=5))
    strategy = ThompsonSampling(
        CountingStore(store),
        FixedWeights(rng=random.Random(1)),
        ThompsonParameters(warmup_votes=10, top_two_probability=1.0, refresh_s=5.0),
        since=round_start,
        rng=random.Random(2),
        clock=FakeClock(),
        run_refresh=lambda refresh: refresh(),
    )

    shares = Counter(Router(strategy, VARIANTS).assign(None).variant for _ in range(300))

    assert shares["B"] >= 290


def test_a_round_warms_up_afresh_whatever_came_before(store: FeedbackStore) -> None:
    round_start = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    record(store, "A", 50, up=50, at=round_start - timedelta(days=1))
    record(store, "B", 50, up=0, at=round_start - timedelta(days=1))
    record(store, "A", 3, up=3, at=round_start)  # B has nothing in this round yet
    router = Router(
        build_strategy(
            "thompson",
            counts=store,
            counts_since=round_start,
            thompson=ThompsonParameters(warmup_votes=10),
        ),
        VARIANTS,
    )
    weighted = Router(FixedWeights(), VARIANTS)
    users = [reader_hash(f"reader-{n}") for n in range(100)]

    assert [router.assign(u).variant for u in users] == [weighted.assign(u).variant for u in users]
