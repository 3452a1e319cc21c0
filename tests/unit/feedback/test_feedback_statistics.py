"""The pure-Python experiment statistics against closed forms computed by hand."""

from __future__ import annotations

import math

import pytest
from pressroom_common.experiment.statistics import (
    best_arm_probabilities,
    beta_quantile,
    chi_square_sf,
    regularized_incomplete_beta,
    sample_ratio_mismatch_p_value,
)


def probability_b_beats_a(alpha_a: int, beta_a: int, alpha_b: int, beta_b: int) -> float:
    """Exact P(p_B > p_A) for Beta posteriors with integer alpha_b (Evan Miller's sum)."""

    def log_beta(a: float, b: float) -> float:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)

    return sum(
        math.exp(
            log_beta(alpha_a + i, beta_a + beta_b)
            - math.log(beta_b + i)
            - log_beta(1 + i, beta_b)
            - log_beta(alpha_a, beta_a)
        )
        for i in range(alpha_b)
    )


@pytest.mark.parametrize("x", [0.01, 0.3, 0.5, 0.77, 0.999])
def test_incomplete_beta_matches_the_closed_forms_with_a_unit_parameter(x: float) -> None:
    assert regularized_incomplete_beta(5, 1, x) == pytest.approx(x**5, rel=1e-12)
    assert regularized_incomplete_beta(1, 7, x) == pytest.approx(1 - (1 - x) ** 7, rel=1e-12)


def test_incomplete_beta_is_one_half_at_the_centre_of_a_symmetric_beta() -> None:
    # lgamma rounding grows with the counts: ~1e-10 here, ~1e-9 at a million votes.
    assert regularized_incomplete_beta(40_000, 40_000, 0.5) == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize("probability", [0.025, 0.5, 0.975])
def test_beta_quantile_inverts_closed_forms(probability: float) -> None:
    assert beta_quantile(4, 1, probability) == pytest.approx(probability ** (1 / 4), abs=1e-10)
    assert beta_quantile(1, 3, probability) == pytest.approx(
        1 - (1 - probability) ** (1 / 3), abs=1e-10
    )


def test_beta_quantile_stays_exact_for_a_million_votes() -> None:
    quantile = beta_quantile(620_001, 380_001, 0.975)
    assert regularized_incomplete_beta(620_001, 380_001, quantile) == pytest.approx(0.975, abs=1e-9)
    # Close to the normal approximation at this size: mean + 1.96 sd.
    mean = 620_001 / 1_000_002
    sd = math.sqrt(mean * (1 - mean) / 1_000_003)
    assert quantile == pytest.approx(mean + 1.959964 * sd, abs=1e-6)


def test_beta_quantile_rejects_a_probability_outside_the_open_unit_interval() -> None:
    with pytest.raises(ValueError, match="probability"):
        beta_quantile(2, 2, 1.0)


@pytest.mark.parametrize("statistic", [0.1, 1.0, 3.84, 10.0, 40.0])
def test_chi_square_tail_matches_closed_forms(statistic: float) -> None:
    assert chi_square_sf(statistic, 1) == pytest.approx(math.erfc(math.sqrt(statistic / 2)), 1e-10)
    assert chi_square_sf(statistic, 2) == pytest.approx(math.exp(-statistic / 2), 1e-10)
    assert chi_square_sf(statistic, 4) == pytest.approx(
        math.exp(-statistic / 2) * (1 + statistic / 2), 1e-10
    )


def test_srm_p_value_is_small_for_a_broken_split_and_one_for_a_perfect_one() -> None:
    weights = {"A": 1.0, "B": 1.0}
    assert sample_ratio_mismatch_p_value({"A": 500, "B": 500}, weights) == pytest.approx(1.0)
    broken = sample_ratio_mismatch_p_value({"A": 5_300, "B": 4_700}, weights)
    # chi-square = 2 * 300^2 / 5000 = 36 with 1 degree of freedom.
    assert broken == pytest.approx(math.erfc(math.sqrt(18)), rel=1e-9)


def test_srm_uses_unequal_weights_and_ignores_variants_without_weight() -> None:
    # 3:1 weights, 780 vs 220 observed: chi-square = 30^2/750 + 30^2/250 = 4.8.
    p_value = sample_ratio_mismatch_p_value(
        {"A": 780, "B": 220, "C": 99}, {"A": 3.0, "B": 1.0, "C": 0.0}
    )
    assert p_value == pytest.approx(math.erfc(math.sqrt(2.4)), rel=1e-9)


def test_srm_has_no_test_without_two_weighted_variants_or_traffic() -> None:
    assert sample_ratio_mismatch_p_value({"A": 10}, {"A": 1.0}) is None
    assert sample_ratio_mismatch_p_value({}, {"A": 1.0, "B": 1.0}) is None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((11, 91), (21, 81)),
        ((120, 80), (130, 70)),
        ((3, 3), (3, 3)),
        ((4, 1), (1, 3)),
        ((50_001, 50_001), (50_101, 49_901)),  # a hundred thousand votes each
    ],
)
def test_probability_best_matches_the_exact_two_variant_sum(
    a: tuple[int, int], b: tuple[int, int]
) -> None:
    result = best_arm_probabilities({"A": a, "B": b})
    exact_b = probability_b_beats_a(*a, *b)
    assert result["B"].probability_best == pytest.approx(exact_b, abs=1e-5)
    assert result["A"].probability_best + result["B"].probability_best == pytest.approx(1.0)


def test_expected_loss_matches_the_hand_integral() -> None:
    # Beta(4, 1) vs Beta(1, 3): E[max] = 0.8 + 1/280 (see the store's hand-computed example).
    result = best_arm_probabilities({"A": (4, 1), "B": (1, 3)})
    assert result["A"].expected_loss == pytest.approx(1 / 280, abs=1e-5)
    assert result["B"].expected_loss == pytest.approx(0.8 + 1 / 280 - 0.25, abs=1e-5)


def test_expected_loss_of_identical_uniform_posteriors_is_a_sixth() -> None:
    # E[max of two uniforms] = 2/3, each mean 1/2.
    result = best_arm_probabilities({"A": (1, 1), "B": (1, 1)})
    assert result["A"].probability_best == pytest.approx(0.5, abs=1e-9)
    assert result["A"].expected_loss == pytest.approx(1 / 6, abs=1e-5)


def test_verdict_is_deterministic_and_covers_every_variant() -> None:
    posteriors = {"A": (30.0, 70.0), "B": (35.0, 65.0), "C": (25.0, 75.0)}
    first = best_arm_probabilities(posteriors)
    assert first == best_arm_probabilities(posteriors)
    assert sum(arm.probability_best for arm in first.values()) == pytest.approx(1.0)
    assert max(first, key=lambda name: first[name].probability_best) == "B"
    assert best_arm_probabilities({}) == {}
