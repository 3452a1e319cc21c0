"""The one rule that decides the A/B test (returned by /api/stats, shown by every client)."""

from __future__ import annotations

import pytest
from pressroom_common.experiment import statistics
from pressroom_common.experiment.report import (
    MIN_LIFT,
    MIN_VOTES_PER_VARIANT,
    UNCATEGORISED,
    DecisionRules,
    judge,
    judge_categories,
)

ENOUGH = MIN_VOTES_PER_VARIANT


@pytest.mark.parametrize(
    ("votes", "decision", "leader"),
    [
        ({}, "one_variant", None),
        ({"A": (90, 10)}, "one_variant", "A"),
        # A clear leader is no winner while either variant lacks votes...
        ({"A": (29, 0), "B": (0, 40)}, "too_few_votes", "A"),
        ({"A": (ENOUGH, 0), "B": (0, ENOUGH - 1)}, "too_few_votes", "A"),
        # ... and with enough votes, a probable best decides.
        ({"A": (ENOUGH, 0), "B": (0, ENOUGH)}, "winner", "A"),
        ({"A": (40, 60), "B": (60, 40)}, "winner", "B"),
        # Equal up-rates, known closely: no lift worth MIN_LIFT is there to find (futility).
        ({"A": (400, 600), "B": (401, 599)}, "no_lift", "B"),
        # Equal, but not yet known closely enough for either call.
        ({"A": (20, 20), "B": (21, 19)}, "too_close", "B"),
    ],
)
def test_the_decision_needs_two_variants_enough_votes_each_and_a_probable_answer(
    votes: dict[str, tuple[int, int]], decision: str, leader: str | None
) -> None:
    judgement = judge(votes)

    assert (judgement.decision, judgement.leader) == (decision, leader)


def test_without_a_futility_rule_equal_variants_stay_too_close() -> None:
    judgement = judge({"A": (400, 600), "B": (401, 599)}, DecisionRules(min_lift=None))

    assert judgement.decision == "too_close"
    assert judgement.probability_no_lift is None


def test_a_decided_round_needs_no_more_votes() -> None:
    assert judge({"A": (40, 60), "B": (60, 40)}).votes_needed == {"A": 0, "B": 0}


def test_a_short_variant_needs_at_least_the_minimum() -> None:
    needed = judge({"A": (5, 5), "B": (10, 10)}).votes_needed

    assert needed["A"] >= ENOUGH - 10 and needed["B"] >= ENOUGH - 20


@pytest.mark.parametrize(
    ("rates", "expected"),
    [
        ((0.40, 0.48), "winner"),  # a lift past MIN_LIFT
        ((0.40, 0.40), "no_lift"),
        ((0.40, 0.40 + MIN_LIFT / 2), None),  # halfway: either call, whichever comes
    ],
)
def test_the_votes_needed_at_the_current_rates_do_decide_the_round(
    rates: tuple[float, float], expected: str | None
) -> None:
    """Scale the votes to the plan, at the same rates: the round is then decided."""
    start = {
        name: (round(40 * rate), 40 - round(40 * rate))
        for name, rate in zip("AB", rates, strict=True)
    }
    undecided = judge(start)
    assert undecided.decision == "too_close"
    assert min(undecided.votes_needed.values()) > 0

    planned = {name: 40 + needed + needed // 10 for name, needed in undecided.votes_needed.items()}
    observed = {name: up / 40 for name, (up, _) in start.items()}
    decided = judge(
        {
            name: (round(votes * observed[name]), votes - round(votes * observed[name]))
            for name, votes in planned.items()
        }
    )

    assert decided.decision in ({expected} if expected else {"winner", "no_lift"})
    assert decided.votes_needed == {"A": 0, "B": 0}


def test_each_category_is_judged_by_the_same_rule_and_a_turned_winner_is_flagged() -> None:
    # category -> variant -> (impressions, up, down)
    counts = {
        UNCATEGORISED: {"A": (12, 5, 5), "B": (10, 4, 4)},
        "sport": {"A": (100, 20, 80), "B": (100, 70, 30)},  # B wins here...
        "business": {"A": (100, 70, 30), "B": (100, 20, 80)},  # ... A here
        "tech": {"A": (50, 40, 10)},  # B served none of it
    }

    by_category = judge_categories(counts, overall_leader="A")

    assert [item.category for item in by_category] == ["business", "sport", "tech", UNCATEGORISED]
    for item in by_category:
        votes = {row.variant: (row.up, row.down) for row in item.variants}
        judgement = judge(votes)
        assert (item.verdict.decision, item.verdict.leader) == (
            judgement.decision,
            judgement.leader,
        )
        assert item.verdict.probability_best == judgement.probability_best
        assert item.verdict.votes_needed == judgement.votes_needed
    business, sport, tech, uncategorised = by_category
    assert (sport.verdict.decision, sport.verdict.leader, sport.disagrees_with_overall) == (
        "winner",
        "B",
        True,
    )
    assert (business.verdict.leader, business.disagrees_with_overall) == ("A", False)
    # A variant without the category's traffic is there with zeros: too few votes to decide.
    assert [(row.variant, row.impressions, row.up_rate) for row in tech.variants] == [
        ("A", 50, 0.8),
        ("B", 0, None),
    ]
    assert (tech.verdict.decision, tech.disagrees_with_overall) == ("too_few_votes", False)
    # Undecided categories never disagree, whoever leads them.
    assert uncategorised.verdict.decision == "too_few_votes"
    assert not uncategorised.disagrees_with_overall


def test_one_grid_for_both_integrals_gives_the_bits_of_two() -> None:
    first, second = statistics.up_rate_posterior(40, 60), statistics.up_rate_posterior(46, 54)
    grid = statistics.PosteriorGrid([first, second])
    posteriors = {"A": first, "B": second}

    assert statistics.best_arm_probabilities(posteriors, grid=grid) == (
        statistics.best_arm_probabilities(posteriors)
    )
    assert statistics.probability_within(second, first, MIN_LIFT, grid=grid) == (
        statistics.probability_within(second, first, MIN_LIFT)
    )
    # A grid of other posteriors is not used.
    other = statistics.PosteriorGrid([first, statistics.up_rate_posterior(1, 1)])
    assert statistics.probability_within(second, first, MIN_LIFT, grid=other) == (
        statistics.probability_within(second, first, MIN_LIFT)
    )
