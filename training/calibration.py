"""The classifier's calibration and abstention, fitted on validation headlines only.

The fine-tuned classifier answers a category for every headline, and answers it confidently on
headlines unlike BBC's. Packaging therefore fits, on the served model (ONNX Runtime, int8)
and the validation split alone:

- a temperature: one scalar T that divides the logits, the one minimising the negative
  log-likelihood of the validation headlines (temperature scaling). The NLL is convex in 1/T,
  so a golden-section search over 1/T finds it;
- a threshold on the calibrated top probability: the lowest at which the labels answered are
  right at least `precision_target` of the time on each validation source (BBC, and headlines
  of other publishers labelled by their URL section), so that it holds on headlines unlike
  BBC's as well. Below it the classifier abstains. Where no threshold reaches the target on
  validation, the threshold is 1: the classifier labels nothing it is not certain of.

Both go into the artifact's config (`pressroom_calibration`), which `code/inference.py` applies;
the figures (ECE before and after on BBC test, precision and coverage at the threshold on held-out
sets) go into the manifest and the model card.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformers import PreTrainedModel

import models.serving.inference as serving
from training.data import Headline
from training.evaluate import (
    ECE_BINS,
    expected_calibration_error,
    label_ids,
    negative_log_likelihood,
    selective_report,
)
from training.train import batches_in_order

# The temperatures searched: far wider than fine-tuned classifiers need (about 0.5 to 3).
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0
NEVER = 1.0  # the threshold when no threshold reaches the precision target on validation


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [MIN_TEMPERATURE, MAX_TEMPERATURE] minimising the NLL of softmax(logits / T)."""
    if len(labels) == 0:
        raise ValueError("temperature scaling needs labelled validation headlines")

    def nll(inverse: float) -> float:
        return negative_log_likelihood(serving.softmax(logits, 1 / inverse), labels)

    lowest, highest = _golden_section(nll, 1 / MAX_TEMPERATURE, 1 / MIN_TEMPERATURE)
    return 2 / (lowest + highest)


def _golden_section(
    function: Callable[[float], float], low: float, high: float, tolerance: float = 1e-7
) -> tuple[float, float]:
    """The interval, narrowed to `tolerance`, that holds the minimum of a convex function."""
    ratio = (math.sqrt(5) - 1) / 2
    left, right = high - ratio * (high - low), low + ratio * (high - low)
    f_left, f_right = function(left), function(right)
    while high - low > tolerance:
        if f_left <= f_right:
            high, right, f_right = right, left, f_left
            left = high - ratio * (high - low)
            f_left = function(left)
        else:
            low, left, f_left = left, right, f_right
            right = low + ratio * (high - low)
            f_right = function(right)
    return low, high


def lowest_threshold(probabilities: np.ndarray, labels: np.ndarray, target: float) -> float | None:
    """The lowest top probability t at which the headlines scoring at least t are labelled
    right at least `target` of the time (None where no t does)."""
    confidence = probabilities.max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    descending = confidence[order]
    correct = (probabilities.argmax(axis=1) == labels)[order]
    precision = np.cumsum(correct) / np.arange(1, len(correct) + 1)
    # A threshold keeps every headline of its score: only the last of equal scores counts.
    last_of_equals = np.append(descending[1:] < descending[:-1], True)
    reached = last_of_equals & (precision >= target)
    return float(descending[reached].min()) if reached.any() else None


def calibrate(
    model: PreTrainedModel,
    model_dir: Path,
    validation: Mapping[str, Sequence[Headline]],
    held_out: Mapping[str, Sequence[Headline]],
    precision_target: float,
    *,
    reference: str,
) -> dict[str, Any]:
    """Fit the served classifier in `model_dir` on the `validation` sets (by source), write the
    calibration into its config.json (and `model.config`), and measure it on the `held_out`
    sets; `reference` names the held-out set of the ECE figures (BBC test)."""
    loaded = serving.load_model(model_dir)
    every_set = {**validation, **held_out}
    logits = {name: _logits(loaded, headlines) for name, headlines in every_set.items()}
    labels = {name: label_ids(headlines) for name, headlines in every_set.items()}
    fitting = [name for name in validation if len(validation[name])]
    pooled_logits = np.concatenate([logits[name] for name in fitting])
    pooled_labels = np.concatenate([labels[name] for name in fitting])
    temperature = fit_temperature(pooled_logits, pooled_labels)

    def probabilities(name: str, t: float = temperature) -> np.ndarray:
        return serving.softmax(logits[name], t)

    thresholds = [
        lowest_threshold(probabilities(name), labels[name], precision_target) for name in fitting
    ]
    met = all(t is not None for t in thresholds)
    threshold = max(t for t in thresholds if t is not None) if met else NEVER
    model.config.update(
        {
            serving.CALIBRATION_CONFIG_KEY: {
                "temperature": temperature,
                "threshold": threshold,
                "precision_target": precision_target,
            }
        }
    )
    model.config.save_pretrained(model_dir)
    pooled_before = serving.softmax(pooled_logits)
    pooled_after = serving.softmax(pooled_logits, temperature)
    return {
        "method": "temperature scaling; abstains below the threshold",
        "temperature": round(temperature, 4),
        "threshold": round(threshold, 4),
        "precision_target": precision_target,
        "target_met_on_validation": met,
        "fitted_on": {name: len(validation[name]) for name in validation},
        "validation_nll_before": round(negative_log_likelihood(pooled_before, pooled_labels), 4),
        "validation_nll_after": round(negative_log_likelihood(pooled_after, pooled_labels), 4),
        "ece_bins": ECE_BINS,
        "ece_set": reference,
        "test_ece_before": round(
            expected_calibration_error(probabilities(reference, 1.0), labels[reference]), 4
        ),
        "test_ece_after": round(
            expected_calibration_error(probabilities(reference), labels[reference]), 4
        ),
        "at_threshold": {
            name: selective_report(probabilities(name), labels[name], threshold)
            for name in held_out
        },
    }


def _logits(loaded: serving.LoadedModel, headlines: Sequence[Headline]) -> np.ndarray:
    chunks = [
        serving.classifier_logits(loaded, [h.text for h in chunk])
        for chunk in batches_in_order(headlines, 64)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, len(loaded.labels or {})))
