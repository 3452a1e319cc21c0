"""The offline gate between "trained" and "serving": a challenger that would make the product
worse is rejected before any reader sees it.

Votes reward whatever readers up-vote, so a retrained model can collapse onto a few safe
headlines and still win a round. Before a round, the challenger and its champion are measured
side by side: the same held-out headlines (bits per character), and the same prompts, each
answered several times with the served defaults under the same seeds (variety, words, repeats,
length, a blocklist). The prompts are the fixed reader prompts plus the prompts the votes were
cast on: collapse shows where the votes pulled, and readers who ask the same thing again should
not get the same headline. Every threshold is a field of `GateThresholds`; the verdict, each
check with both figures, is recorded in the challenger's manifest and model card, and a
challenger that fails is registered `Rejected` with the reasons.

The same measures judge a round's shadow stage on its live answers (`judge_live`): the answers
the challenger gave readers' own requests beside the champion, with their latency and errors
(`local.rounds.shadow` reads them from data capture), before it gets a canary share.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from better_profanity.better_profanity import Profanity
from pressroom_common.generation.service import headline
from pydantic import BaseModel, Field

import models.serving.inference as serving
from training.evaluate import READER_PROMPTS, READING_PARAMETERS, has_back_to_back_repeat

# Each prompt is answered once per seed, as readers asking again would see it.
GATE_SEEDS = (101, 202, 303, 404, 505)
# The voted prompts measured besides READER_PROMPTS: the most frequent ones.
MAX_VOTED_PROMPTS = 20
# better-profanity's list, less the words news reports in plain language: a gate that flagged
# them would reject a model for reporting a murder.
NEWS_WORDS = (
    "breasts",
    "fat",
    "gay",
    "gays",
    "god",
    "hell",
    "kill",
    "lesbians",
    "murder",
    "naked",
    "nude",
    "nudes",
    "porn",
    "pornography",
    "rape",
    "raped",
    "sex",
    "sexual",
    "strip",
    "stupid",
    "ugly",
)
BLOCKLIST = Profanity()
BLOCKLIST.load_censor_words(whitelist_words=list(NEWS_WORDS))


def has_blocklisted_word(text: str) -> bool:
    """Whether a word of `text` is on the blocklist. Tokens without a letter are left out: the
    blocklist reads digits as letters ("sh1t"), so it took "to 0.75%" for a profane word."""
    return BLOCKLIST.contains_profanity(
        " ".join(word for word in text.split() if any(c.isalpha() for c in word))
    )


class GateThresholds(BaseModel):
    """What a challenger must hold to earn a round; the one place these numbers live."""

    model_config = {"frozen": True}

    max_bits_per_char_drift: float = Field(
        default=0.10, description="held-out bits/char above the champion's"
    )
    min_distinct_share: float = Field(
        default=0.85, description="distinct answers among a prompt's answers, over all prompts"
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
    # The shadow stage's gate on live answers (`judge_live`) only.
    min_live_answers: int = Field(
        default=20, description="live answers the shadow gave, at the least, before it is judged"
    )
    max_live_error_rate: float = Field(
        default=0.01, description="share of the requests copied to the shadow that it failed"
    )
    max_live_p95_latency_ratio: float = Field(
        default=1.5, description="the shadow's p95 latency over the champion's, on live requests"
    )


# The smoke profile's two-layer slivers write garbled text whose repeats and length swing
# from one few-step retrain to the next; there the gate still refuses collapse and drift.
SMOKE_GATE = GateThresholds(max_repeated_word_share_rise=1.0, max_median_words_change=100.0)


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


@dataclass(frozen=True)
class GatePrompts:
    """The fixed reader prompts, and the most frequent prompts the votes were cast on."""

    reader: tuple[str, ...]
    voted: tuple[str, ...]

    @classmethod
    def of(cls, voted_prompts: Sequence[str]) -> GatePrompts:
        counted = Counter(prompt.strip() for prompt in voted_prompts)
        voted = tuple(prompt for prompt, _ in counted.most_common(MAX_VOTED_PROMPTS))
        return cls(READER_PROMPTS, voted or READER_PROMPTS)

    def all(self) -> list[str]:
        return list(dict.fromkeys([*self.reader, *self.voted]))


def distinct_share(by_prompt: dict[str, list[str]], prompts: Sequence[str]) -> float:
    """Distinct answers among each prompt's answers, over `prompts`: 1 when no prompt ever got
    the same headline twice; 1/k when every prompt got one headline k times."""
    answers = [by_prompt[prompt] for prompt in prompts]
    distinct = sum(len({text.strip().lower() for text in texts}) for texts in answers)
    return round(distinct / sum(len(texts) for texts in answers), 4)


def answer_figures(
    loaded: serving.LoadedModel, gate_prompts: GatePrompts, answers_per_prompt: int
) -> dict[str, Any]:
    """What readers would read: each prompt answered once per gate seed."""
    prompts = gate_prompts.all()
    by_prompt: dict[str, list[str]] = {prompt: [] for prompt in prompts}
    for seed in GATE_SEEDS[:answers_per_prompt]:
        answers = serving.generate(loaded, list(prompts), replace(READING_PARAMETERS, seed=seed))
        for prompt, text in zip(prompts, answers, strict=True):
            by_prompt[prompt].append(text)
    pairs = [(prompt, text) for prompt, texts in by_prompt.items() for text in texts]
    return {
        "prompts": len(by_prompt),
        "answers": len(pairs),
        "distinct_share": distinct_share(by_prompt, gate_prompts.reader),
        "voted_distinct_share": distinct_share(by_prompt, gate_prompts.voted),
        **text_figures(pairs),
    }


def text_figures(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """What the gate reads in answers, each a (prompt, continuation) pair: the share without a
    word, the share with a word repeated back to back (in the headline a reader sees), the
    median words, and how many hold a blocklisted word."""
    answers = [text for _, text in pairs]
    words = [sum(serving.has_word(part) for part in text.split()) for text in answers]
    headlines = [headline(prompt, text) for prompt, text in pairs]
    return {
        "no_word_share": round(sum(n == 0 for n in words) / len(words), 4),
        "repeated_word_share": round(
            sum(map(has_back_to_back_repeat, headlines)) / len(headlines), 4
        ),
        "median_words": float(statistics.median(words)),
        "blocklisted_answers": sum(map(has_blocklisted_word, answers)),
    }


def gate_figures(
    loaded: serving.LoadedModel,
    test_bits_per_char: float,
    prompts: GatePrompts,
    answers_per_prompt: int,
) -> dict[str, Any]:
    """Everything the gate compares, for one model on its engine whose held-out bits/char (the
    figure its manifest records, from `training.evaluate`) is `test_bits_per_char`."""
    return {
        "test_bits_per_char": test_bits_per_char,
        **answer_figures(loaded, prompts, answers_per_prompt),
    }


def judge(
    challenger: dict[str, Any], champion: dict[str, Any], thresholds: GateThresholds
) -> GateVerdict:
    """The verdict on two `gate_figures`: every check, failed ones with the reason."""
    t = thresholds
    drift = challenger["test_bits_per_char"] - champion["test_bits_per_char"]
    held_out = GateCheck(
        "held-out bits/char",
        challenger["test_bits_per_char"],
        champion["test_bits_per_char"],
        f"at most {t.max_bits_per_char_drift:g} above the champion's",
        drift <= t.max_bits_per_char_drift,
    )
    distinct = (
        ("distinct answers to a reader prompt", "distinct_share"),
        ("distinct answers to a voted prompt", "voted_distinct_share"),
    )
    return GateVerdict((held_out, *answer_checks(challenger, champion, t, distinct)))


def judge_live(
    challenger: dict[str, Any], champion: dict[str, Any], thresholds: GateThresholds
) -> GateVerdict:
    """The verdict on a shadow's live figures against the champion's on the same requests
    (`answers`, `error_rate`, `p95_latency_ms`, `distinct_share` over the prompts readers
    asked more than once, and the `text_figures`): enough answers, few errors, a latency near
    the champion's, and the offline gate's checks on what readers would have read."""
    t = thresholds
    latency_ceiling = champion["p95_latency_ms"] * t.max_live_p95_latency_ratio
    live = (
        GateCheck(
            "live answers captured",
            challenger["answers"],
            champion["answers"],
            f"at least {t.min_live_answers}",
            challenger["answers"] >= t.min_live_answers,
        ),
        GateCheck(
            "error rate",
            challenger["error_rate"],
            champion["error_rate"],
            f"at most {t.max_live_error_rate:g}",
            challenger["error_rate"] <= t.max_live_error_rate,
        ),
        GateCheck(
            "p95 latency (ms)",
            challenger["p95_latency_ms"],
            champion["p95_latency_ms"],
            f"at most {latency_ceiling:g} ({t.max_live_p95_latency_ratio:g}x the champion's)",
            challenger["p95_latency_ms"] <= latency_ceiling,
        ),
    )
    distinct = (("distinct answers to a prompt asked again", "distinct_share"),)
    return GateVerdict((*live, *answer_checks(challenger, champion, t, distinct)))


def answer_checks(
    challenger: dict[str, Any],
    champion: dict[str, Any],
    thresholds: GateThresholds,
    distinct: Sequence[tuple[str, str]],
) -> tuple[GateCheck, ...]:
    """The checks on what readers read: variety (one check per `(name, figure)` in
    `distinct`), words, repeats, length and the blocklist."""

    def check(name: str, key: str, passed: bool, limit: str) -> GateCheck:
        return GateCheck(name, challenger[key], champion[key], limit, passed)

    t = thresholds
    repeated_ceiling = champion["repeated_word_share"] + t.max_repeated_word_share_rise
    median_change = abs(challenger["median_words"] - champion["median_words"])
    variety = []
    for name, key in distinct:
        floor = max(t.min_distinct_share, champion[key] - t.max_distinct_share_drop)
        variety.append(check(name, key, challenger[key] >= floor, f"at least {floor:g}"))
    return (
        *variety,
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
