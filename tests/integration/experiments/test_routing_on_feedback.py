"""The experiment's statistics and adaptive routing on known truths (A 0.60 vs B 0.50 up-rate),
through the real router and the real store, with fixed seeds."""

from __future__ import annotations

import random
from collections import Counter

from pressroom_common.experiment.adaptive import ThompsonSampling
from pressroom_common.experiment.routing import FixedWeights, Router
from pressroom_common.experiment.settings import ThompsonParameters
from pressroom_common.feedback.store import FeedbackStore

from local.experiment.report import experiment_report
from tests.fixtures.experiments import TRUE_RATES, VARIANTS, FakeClock, serve_readers

WEIGHTS = {name: variant.weight for name, variant in VARIANTS.items()}


def test_a_fixed_split_of_2000_votes_finds_the_better_variant_and_brackets_the_difference(
    experiment_store: FeedbackStore,
) -> None:
    router = Router(FixedWeights(), VARIANTS)

    serve_readers(router, experiment_store, 2000, seed=11, clock=FakeClock())
    report = experiment_report(experiment_store, WEIGHTS)

    difference = report.difference
    assert difference is not None
    assert (difference.leader, difference.runner_up) == ("A", "B")
    true_difference = TRUE_RATES["A"] - TRUE_RATES["B"]
    assert difference.low < true_difference < difference.high
    assert difference.low > 0
    assert report.stats.verdict.probability_best["A"] > 0.95
    assert sum(item.up + item.down for item in report.stats.variants) == 2000
    # The hash split of new users matches the 1:1 weights.
    assert report.stats.verdict.sample_ratio_mismatch_p_value is not None
    assert report.stats.verdict.sample_ratio_mismatch_p_value > 0.001
    assert report.verdict.startswith("headline-base is better with")


def test_thompson_sampling_sends_most_late_traffic_to_the_better_variant(
    experiment_store: FeedbackStore,
) -> None:
    clock = FakeClock()
    strategy = ThompsonSampling(
        experiment_store,
        FixedWeights(rng=random.Random(3)),
        # Plain Thompson sampling (top-two 1.0): the traffic follows the evidence.
        ThompsonParameters(warmup_votes=100, top_two_probability=1.0, refresh_s=10.0),
        rng=random.Random(5),
        clock=clock,
        run_refresh=lambda refresh: refresh(),  # in the request: a reproducible run
    )
    router = Router(strategy, VARIANTS)

    served = serve_readers(router, experiment_store, 2000, seed=21, clock=clock)

    late = Counter(served[-500:])
    assert late["A"] / 500 >= 0.70
    # Warm-up: both variants got their first 100 impressions before adapting.
    assert min(Counter(served).values()) >= 100


def test_equal_variants_get_no_verdict_after_a_few_hundred_votes(
    experiment_store: FeedbackStore,
) -> None:
    router = Router(FixedWeights(), VARIANTS)

    serve_readers(
        router, experiment_store, 300, seed=13, clock=FakeClock(), true_rates={"A": 0.5, "B": 0.5}
    )
    report = experiment_report(experiment_store, WEIGHTS)

    assert report.verdict.startswith("No clear winner yet:"), report.verdict
    assert report.difference is not None
    assert report.difference.low < 0 < report.difference.high
