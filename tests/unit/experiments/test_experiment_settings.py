"""The experiment's environment variables reach the router as the parameters its strategy and
guardrail are built from, one field each, defaults where a variable is unset."""

from __future__ import annotations

import pytest
from pressroom_common.experiment.settings import (
    GuardrailSettings,
    GuardrailThresholds,
    ThompsonParameters,
    ThompsonSettings,
)


def test_each_guardrail_variable_sets_its_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {"window_s": 30.0, "min_requests": 7, "max_error_rate": 0.25}
    values |= {"max_p95_latency_ms": 900.0, "cooldown_s": 45.0}
    for field, value in values.items():
        monkeypatch.setenv(f"GUARDRAIL_{field.upper()}", str(value))

    assert GuardrailSettings().guardrail == GuardrailThresholds(**values)


def test_each_thompson_variable_sets_its_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THOMPSON_WARMUP_VOTES", "12")
    monkeypatch.setenv("THOMPSON_REFRESH_S", "2.5")

    parameters = ThompsonSettings().thompson

    assert parameters == ThompsonParameters(warmup_votes=12, refresh_s=2.5)
    assert parameters.top_two_probability == ThompsonParameters().top_two_probability
