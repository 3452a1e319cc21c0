"""The offline gate between "trained" and "serving": a challenger that would make the product
worse is rejected before any reader sees it.

Votes reward whatever readers up-vote, so a retrained model can collapse onto a few safe
headlines and still win a round. Before a round, the challenger and its champion are measured
side by side: the same held-out headlines (bits per character), and the same reader prompts
answered with the served defaults under the same seeds (variety, words, repeats, length, a
blocklist). Every threshold is a field of `GateThresholds`; the verdict, each check with both
figures, is recorded in the challenger's manifest and model card, and a challenger that fails
is registered `Rejected` with the reasons.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from better_profanity import profanity
from pressroom_common.generation.service import headline
from pydantic import BaseModel, Field
from transformers import PreTrainedModel, PreTrainedTokenizerBase

import models.serving.inference as serving
from training.data import Headline
from training.evaluate import READER_PROMPTS, READING_PARAMETERS, has_back_to_back_repeat
from training.evaluate import held_out_metrics as bits_per_char_metrics

# Each reader prompt is answered once per seed, as readers asking again would see it: the full
# profile answers each three times (120 answers); the smoke profile's slivers once.
GATE_SEEDS = (101, 202, 303)


class GateThresholds(BaseModel):
    """What a challenger must hold to earn a round; the one place these numbers live."""

    model_config = {"frozen": True}

    max_bits_per_char_drift: float = Field(
        default=0.10, description="held-out bits/char above the champion's"
    )
    min_distinct_share: float = Field(
        default=0.85, description="distinct continuations among all the gate's answers"
    )
    max_distinct_share_drop: float = Field(
        default=0.05, description="distinct share below the champion's"
    )
    max_no_word_share: float = Field(default=0.0, description="answers without a word")
    max_repeated_word_share_rise: float = Field(
        default=0.05, description="answers with a word repeated back to back, above the champion"
    )
    max_median_words_change: float = Field(
        default=3.0, description="median words per answer, away from the champion's"
    )
    max_blocklisted_answers: int = Field(
        default=0, description="answers holding a blocklisted (profane) word"
    )


@dataclass(frozen=True)
class GateCheck:
    name: str
    challenger: float
    champion: float
    limit: str
    passed: bool

    def reason(self) -> str:
        return f"{self.name} {self.challenger:g} (champion {self.champion:g}; must be {self.limit})"


@dataclass(frozen=True)
class GateVerdict:
    checks: tuple[GateCheck, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def reasons(self) -> list[str]:
        return [check.reason() for check in self.checks if not check.passed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": self.reasons(),
            "checks": [asdict(check) for check in self.checks],
        }


def answer_figures(loaded: serving.LoadedModel, answers_per_prompt: int) -> dict[str, Any]:
    """What readers would read: the reader prompts, each answered once per gate seed."""
    prompts, answers = [], []
    for seed in GATE_SEEDS[:answers_per_prompt]:
        answers += serving.generate(
            loaded, list(READER_PROMPTS), replace(READING_PARAMETERS, seed=seed)
        )
        prompts += READER_PROMPTS
    words = [sum(serving.has_word(part) for part in text.split()) for text in answers]
    headlines = [headline(prompt, text) for prompt, text in zip(prompts, answers, strict=True)]
    return {
        "answers": len(answers),
        "distinct_share": round(len({text.strip().lower() for text in answers}) / len(answers), 4),
        "no_word_share": round(sum(n == 0 for n in words) / len(words), 4),
        "repeated_word_share": round(
            sum(map(has_back_to_back_repeat, headlines)) / len(headlines), 4
        ),
        "median_words": float(statistics.median(words)),
        "blocklisted_answers": sum(profanity.contains_profanity(text) for text in answers),
    }


def gate_figures(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    test_set: Sequence[Headline],
    max_length: int,
    answers_per_prompt: int,
) -> dict[str, Any]:
    """Everything the gate compares, for one model."""
    return {
        "test_bits_per_char": bits_per_char_metrics(model, tokenizer, test_set, max_length)[
            "test_bits_per_char"
        ],
        **answer_figures(serving.loaded_generator(model, tokenizer), answers_per_prompt),
    }


def judge(
    challenger: dict[str, Any], champion: dict[str, Any], thresholds: GateThresholds
) -> GateVerdict:
    """The verdict on two `gate_figures`: every check, failed ones with the reason."""

    def check(name: str, key: str, passed: bool, limit: str) -> GateCheck:
        return GateCheck(name, challenger[key], champion[key], limit, passed)

    t = thresholds
    drift = challenger["test_bits_per_char"] - champion["test_bits_per_char"]
    distinct_floor = max(
        t.min_distinct_share, champion["distinct_share"] - t.max_distinct_share_drop
    )
    repeated_ceiling = champion["repeated_word_share"] + t.max_repeated_word_share_rise
    median_change = abs(challenger["median_words"] - champion["median_words"])
    return GateVerdict(
        (
            check(
                "held-out bits/char",
                "test_bits_per_char",
                drift <= t.max_bits_per_char_drift,
                f"at most {t.max_bits_per_char_drift:g} above the champion's",
            ),
            check(
                "distinct answers",
                "distinct_share",
                challenger["distinct_share"] >= distinct_floor,
                f"at least {distinct_floor:g}",
            ),
            check(
                "answers without a word",
                "no_word_share",
                challenger["no_word_share"] <= t.max_no_word_share,
                f"at most {t.max_no_word_share:g}",
            ),
            check(
                "answers with a word repeated back to back",
                "repeated_word_share",
                challenger["repeated_word_share"] <= repeated_ceiling,
                f"at most {repeated_ceiling:g}",
            ),
            check(
                "median words per answer",
                "median_words",
                median_change <= t.max_median_words_change,
                f"within {t.max_median_words_change:g} of the champion's",
            ),
            check(
                "answers with a blocklisted word",
                "blocklisted_answers",
                challenger["blocklisted_answers"] <= t.max_blocklisted_answers,
                f"at most {t.max_blocklisted_answers}",
            ),
        )
    )
