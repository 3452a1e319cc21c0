"""The offline gate's verdict: every threshold in one place, each check naming both figures."""

from __future__ import annotations

from typing import Any

import pytest

from training.feedback.gate import GateThresholds, has_blocklisted_word, judge

CHAMPION = {
    "test_bits_per_char": 1.47,
    "answers": 120,
    "distinct_share": 0.97,
    "voted_distinct_share": 1.0,
    "no_word_share": 0.0,
    "repeated_word_share": 0.02,
    "median_words": 7.0,
    "blocklisted_answers": 0,
}


def test_a_challenger_that_learned_without_losing_anything_passes() -> None:
    challenger = {**CHAMPION, "test_bits_per_char": 1.53, "distinct_share": 0.95}

    verdict = judge(challenger, CHAMPION, GateThresholds())

    assert verdict.passed
    assert verdict.reasons() == []
    assert verdict.as_dict()["passed"] is True
    assert len(verdict.checks) == 7


@pytest.mark.parametrize(
    ("change", "failed"),
    [
        ({"test_bits_per_char": 1.58}, "held-out bits/char"),
        ({"distinct_share": 0.54}, "distinct answers to a reader prompt"),
        ({"distinct_share": 0.90}, "distinct answers to a reader prompt"),  # 7 points below
        ({"voted_distinct_share": 0.75}, "distinct answers to a voted prompt"),
        ({"no_word_share": 0.0083}, "answers without a word"),
        ({"repeated_word_share": 0.08}, "answers with a word repeated back to back"),
        ({"median_words": 3.0}, "median words per answer"),
        ({"median_words": 11.0}, "median words per answer"),
        ({"blocklisted_answers": 1}, "answers with a blocklisted word"),
    ],
)
def test_each_way_a_challenger_makes_the_product_worse_fails_it_naming_why(
    change: dict[str, Any], failed: str
) -> None:
    verdict = judge({**CHAMPION, **change}, CHAMPION, GateThresholds())

    assert not verdict.passed
    [reason] = verdict.reasons()
    assert reason.startswith(f"{failed} ")
    assert "champion" in reason


def test_the_distinct_share_floor_is_never_below_the_absolute_minimum() -> None:
    plain_champion = {**CHAMPION, "distinct_share": 0.86, "voted_distinct_share": 0.86}

    verdict = judge({**plain_champion, "distinct_share": 0.84}, plain_champion, GateThresholds())

    [reason] = verdict.reasons()
    assert "must be at least 0.85" in reason


@pytest.mark.parametrize(
    ("answer", "blocklisted"),
    [
        (" damn the rates", True),
        (" sh1t happens", True),  # digits for letters still count in a word
        (" to 0.75%", False),  # a number is no word: the blocklist read this one as profane
        (" murder trial opens", False),  # news reports it in plain language
        (" rates rise 5.75% in 2015", False),
    ],
)
def test_the_blocklist_reads_words_not_numbers(answer: str, blocklisted: bool) -> None:
    assert has_blocklisted_word(answer) is blocklisted
