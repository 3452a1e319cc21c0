"""The classifier's calibration: the expected calibration error, the temperature fit, the
threshold for a precision target, and the serving config that carries them."""

import numpy as np
import pytest

from models.serving.inference import Calibration, softmax
from training.calibration import fit_temperature, lowest_threshold
from training.evaluate import (
    expected_calibration_error,
    negative_log_likelihood,
    selective_report,
)


def two_classes(top: list[float]) -> np.ndarray:
    """Probabilities whose top class (class 0) has each of `top`."""
    first = np.array(top)
    return np.stack([first, 1 - first], axis=1)


def test_ece_on_a_known_case() -> None:
    # Given two headlines at 0.9 (one right) and two at 0.6 (both right), in 10 bins
    probabilities = two_classes([0.9, 0.9, 0.6, 0.6])
    labels = np.array([0, 1, 0, 0])

    # Then each bin's gap is |accuracy - confidence|, weighted by its share: 0.4 and 0.4
    assert expected_calibration_error(probabilities, labels, bins=10) == pytest.approx(
        0.5 * abs(0.5 - 0.9) + 0.5 * abs(1.0 - 0.6)
    )


def test_ece_bins_hold_their_upper_edge_and_count_each_headline_once() -> None:
    # 0.6 belongs to (0.4, 0.6] and 0.65 to (0.6, 0.8] with 5 bins; one bin each
    probabilities = two_classes([0.6, 0.65])
    labels = np.array([0, 1])
    assert expected_calibration_error(probabilities, labels, bins=5) == pytest.approx(
        0.5 * abs(1 - 0.6) + 0.5 * abs(0 - 0.65)
    )
    # and a bin whose accuracy equals its confidence adds nothing
    calibrated = two_classes([0.75] * 4)
    assert expected_calibration_error(calibrated, np.array([0, 0, 0, 1]), bins=5) == 0


def overconfident(seed: int, count: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z), and logits that say `scale` times z (overconfident)."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0, 1.5, size=(count, 5))
    labels = np.array([rng.choice(5, p=p) for p in softmax(true_logits)])
    return true_logits * scale, labels


def test_the_temperature_fit_lowers_the_validation_nll_and_undoes_overconfidence() -> None:
    logits, labels = overconfident(seed=1, count=4000, scale=3.0)

    temperature = fit_temperature(logits, labels)

    before = negative_log_likelihood(softmax(logits), labels)
    after = negative_log_likelihood(softmax(logits, temperature), labels)
    assert after < before
    assert temperature == pytest.approx(3.0, rel=0.1)
    # and it is the minimum: a finer look on either side finds nothing lower
    for nearby in (temperature * 0.98, temperature * 1.02):
        assert negative_log_likelihood(softmax(logits, nearby), labels) >= after
    assert expected_calibration_error(softmax(logits, temperature), labels) < (
        expected_calibration_error(softmax(logits), labels)
    )


def test_the_temperature_fit_needs_headlines() -> None:
    with pytest.raises(ValueError, match="labelled validation headlines"):
        fit_temperature(np.zeros((0, 5)), np.zeros(0, dtype=int))


def test_the_threshold_is_the_lowest_that_reaches_the_precision_target() -> None:
    # Given scores, highest first: right, right, wrong, right, wrong
    probabilities = two_classes([0.95, 0.9, 0.8, 0.7, 0.6])
    labels = np.array([0, 0, 1, 0, 1])

    # Precision among those at or above each score: 1, 1, 2/3, 3/4, 3/5
    assert lowest_threshold(probabilities, labels, target=0.75) == pytest.approx(0.7)
    assert lowest_threshold(probabilities, labels, target=0.9) == pytest.approx(0.9)
    assert lowest_threshold(probabilities, labels, target=0.6) == pytest.approx(0.6)


def test_a_threshold_keeps_every_headline_of_its_score() -> None:
    # Two headlines score 0.9, one right and one wrong: 0.9 gives precision 1/2, not 1
    probabilities = two_classes([0.9, 0.9, 0.8])
    labels = np.array([0, 1, 0])
    assert lowest_threshold(probabilities, labels, target=0.9) is None
    assert lowest_threshold(probabilities, labels, target=0.5) == pytest.approx(0.8)


def test_selective_figures_at_a_threshold() -> None:
    probabilities = two_classes([0.95, 0.9, 0.8, 0.7, 0.6])
    labels = np.array([0, 0, 1, 0, 1])

    figures = selective_report(probabilities, labels, threshold=0.8)

    assert figures == {
        "headlines": 5,
        "labelled": 3,
        "coverage": 0.6,
        "precision": round(2 / 3, 4),
        "accuracy_labelling_all": 0.6,
    }
    assert selective_report(probabilities, labels, threshold=0.99)["precision"] is None


def test_serving_reads_the_calibration_from_the_config() -> None:
    assert Calibration.from_config(None) == Calibration(1.0, 0.0, None)
    assert Calibration.from_config(
        {"temperature": 1.5, "threshold": 0.8, "precision_target": 0.9}
    ) == Calibration(1.5, 0.8, 0.9)
    for bad in (
        {"temperature": 0, "threshold": 0.5},
        {"temperature": 1.0, "threshold": 1.5},
        {"temperature": 1.0, "threshold": 0.5, "threshould": 0.5},
        [1.0, 0.5],
    ):
        with pytest.raises(ValueError, match="pressroom_calibration"):
            Calibration.from_config(bad)
