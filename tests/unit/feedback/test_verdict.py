"""The one rule that decides the A/B test (returned by /api/stats, shown by every client)."""

from __future__ import annotations

import pytest
from pressroom_common.experiment.report import (
    DECISION_PROBABILITY,
    MIN_VOTES_PER_VARIANT,
    CredibleInterval,
    LatencyPercentiles,
    VariantStats,
    decide,
)


def arm(variant: str, up: int, down: int) -> VariantStats:
    return VariantStats(
        variant=variant,
        requests=up + down,
        impressions=up + down,
        errors=0,
        error_rate=0.0,
        traffic_share=0.5,
        up=up,
        down=down,
        up_rate=None,
        up_rate_interval=CredibleInterval(low=0.0, high=1.0),
        latency_ms=LatencyPercentiles(p50=None, p95=None),
    )


ENOUGH = MIN_VOTES_PER_VARIANT


@pytest.mark.parametrize(
    ("variants", "probability_best", "decision", "leader"),
    [
        ([], {}, "one_variant", None),
        ([arm("A", 90, 10)], {"A": 1.0}, "one_variant", "A"),
        # A clear leader is no winner while either variant lacks votes...
        ([arm("A", 29, 0), arm("B", 0, 40)], {"A": 0.999, "B": 0.001}, "too_few_votes", "A"),
        (
            [arm("A", ENOUGH, 0), arm("B", 0, ENOUGH - 1)],
            {"A": 0.99, "B": 0.01},
            "too_few_votes",
            "A",
        ),
        # ... and with enough votes, P(best) at the threshold decides.
        (
            [arm("A", ENOUGH, 0), arm("B", 0, ENOUGH)],
            {"A": 1 - DECISION_PROBABILITY, "B": DECISION_PROBABILITY},
            "winner",
            "B",
        ),
        ([arm("A", 20, 20), arm("B", 21, 19)], {"A": 0.45, "B": 0.55}, "too_close", "B"),
    ],
)
def test_the_decision_needs_two_variants_enough_votes_each_and_a_probable_best(
    variants: list[VariantStats],
    probability_best: dict[str, float],
    decision: str,
    leader: str | None,
) -> None:
    assert decide(variants, probability_best) == (decision, leader)
