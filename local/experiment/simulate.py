"""Synthetic readers with a known taste, driving the real API: generate, then vote.

Each reader is a new user id (so sticky routing spreads them by the weights) who asks for a
headline and votes up with the probability its `Taste` gives the answer: a fixed up-rate per
variant (`rates_taste`), or a rule on the headline itself that no model is told (a
`HeadlineTaste`: `PrefersShortHeadlines`, `PrefersNumbers`). Every `checkpoint_every` requests
the simulation reads `GET /api/stats`, so the P(best) trajectory is the API's own verdict.
Whether the strategy "found" the better variant is judged against the truth: the mean
up-probability of what each variant actually served.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from statistics import fmean
from typing import Any, ClassVar

import httpx

PROMPTS = (
    "Markets rally as",
    "Storm warning for",
    "Minister resigns after",
    "Champions league final",
    "New phone launched with",
    "Film festival opens with",
)
# Short headlines keep a simulated request cheap; the model still really generates them.
MAX_NEW_TOKENS = 4
# Past its rate the API answers 429; a reader waits and asks again, as any client should
# (doubling waits from 50 ms: at most 13 s per call).
THROTTLED_RETRIES = 8
THROTTLED_FIRST_WAIT_S = 0.05


class SimulationError(RuntimeError):
    """The API answered something the simulation cannot go on from."""


Taste = Callable[[Mapping[str, Any]], float]
"""A reader's probability of voting up on one `POST /api/generate` answer."""


def rates_taste(true_rates: Mapping[str, float]) -> Taste:
    """Readers who like a variant at a fixed rate, whatever it writes."""

    def taste(generation: Mapping[str, Any]) -> float:
        variant = generation["variant"]
        if variant not in true_rates:
            raise SimulationError(
                f"the API served variant {variant!r}, which has no true rate "
                f"(give one with --rate {variant}=0.5)"
            )
        return true_rates[variant]

    return taste


@dataclass(frozen=True)
class HeadlineTaste:
    """Readers who vote up with `up_if_liked` a headline that `likes` accepts, else with
    `up_otherwise`. No model is told the rule."""

    up_if_liked: float = 0.8
    up_otherwise: float = 0.2

    name: ClassVar[str]

    def likes(self, headline: str) -> bool:
        raise NotImplementedError

    @property
    def description(self) -> str:
        """What the readers like, in words ('headlines of at most 6 words')."""
        raise NotImplementedError

    def __call__(self, generation: Mapping[str, Any]) -> float:
        return self.up_if_liked if self.likes(generation["headline"]) else self.up_otherwise

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "likes": self.description, **asdict(self)}


@dataclass(frozen=True)
class PrefersShortHeadlines(HeadlineTaste):
    max_words: int = 6
    name: ClassVar[str] = "short"

    def likes(self, headline: str) -> bool:
        return len(headline.split()) <= self.max_words

    @property
    def description(self) -> str:
        return f"headlines of at most {self.max_words} words"


@dataclass(frozen=True)
class PrefersNumbers(HeadlineTaste):
    """Readers who like a headline holding a number ('3', '1.5bn', 'ten')."""

    name: ClassVar[str] = "numbers"

    def likes(self, headline: str) -> bool:
        return any(character.isdigit() for character in headline) or not NUMBER_WORDS.isdisjoint(
            word.strip(".,:;!?'\"").lower() for word in headline.split()
        )

    @property
    def description(self) -> str:
        return "headlines holding a number"


NUMBER_WORDS = frozenset(
    {
        *("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
        *("eleven", "twelve", "twenty", "thirty", "forty", "fifty", "hundred", "hundreds"),
        *("thousand", "thousands", "million", "millions", "billion", "billions"),
    }
)
TASTES: dict[str, type[HeadlineTaste]] = {
    taste.name: taste for taste in (PrefersShortHeadlines, PrefersNumbers)
}


@dataclass(frozen=True)
class Checkpoint:
    requests: int
    better_share_in_window: float  # share of the last window's requests the better variant got
    probability_best: dict[str, float]


@dataclass
class SimulationResult:
    served: list[str] = field(default_factory=list)  # the variant of each request, in order
    up_probabilities: list[float] = field(default_factory=list)  # the taste of each, in order
    headlines: list[str] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)  # variant -> "name version" it served
    checkpoints: list[Checkpoint] = field(default_factory=list)
    failed_requests: int = 0

    @property
    def true_rates(self) -> dict[str, float]:
        """Per variant, the mean up-probability of what it served: its true up-rate."""
        by_variant: dict[str, list[float]] = defaultdict(list)
        for variant, probability in zip(self.served, self.up_probabilities, strict=True):
            by_variant[variant].append(probability)
        return {variant: fmean(values) for variant, values in sorted(by_variant.items())}

    @property
    def better(self) -> str:
        rates = self.true_rates
        return max(rates, key=lambda name: rates[name])

    def better_share(self, last: int) -> float:
        """Share of the last `last` served requests that went to the better variant."""
        window = self.served[-last:]
        return sum(1 for variant in window if variant == self.better) / len(window)

    def first_confident_at(self, probability: float) -> int | None:
        """Requests until the API first gave the better variant P(best) >= `probability`."""
        for checkpoint in self.checkpoints:
            if checkpoint.probability_best.get(self.better, 0.0) >= probability:
                return checkpoint.requests
        return None

    @property
    def final_probability_best(self) -> float:
        if not self.checkpoints:
            return 0.0
        return self.checkpoints[-1].probability_best.get(self.better, 0.0)


def simulate(
    client: httpx.Client,
    taste: Taste,
    *,
    requests: int,
    seed: int,
    checkpoint_every: int = 50,
    max_new_tokens: int | None = MAX_NEW_TOKENS,
    on_request: Callable[[], None] = lambda: None,
) -> SimulationResult:
    """Run `requests` synthetic readers against the API `client` points at (its base URL).

    Checkpoints judge P(best) against the variant that is better by what it served so far."""
    if requests < 1 or checkpoint_every < 1:
        raise ValueError("requests and checkpoint_every must be at least 1")
    rng = random.Random(seed)  # noqa: S311 - synthetic readers, not cryptography
    result = SimulationResult()
    window: list[str] = []
    for index in range(1, requests + 1):
        user = {"X-User-Id": f"simulated-reader-{seed}-{index}"}
        answer = _send(
            client,
            "POST",
            "api/generate",
            json={
                "prompt": rng.choice(PROMPTS),
                "seed": index,
                # None: the served default length.
                **({} if max_new_tokens is None else {"max_new_tokens": max_new_tokens}),
            },
            headers=user,
        )
        if answer.status_code != httpx.codes.OK:
            result.failed_requests += 1
        else:
            generation = answer.json()
            up_probability = taste(generation)
            vote = "up" if rng.random() < up_probability else "down"
            stored = _send(
                client,
                "POST",
                "api/feedback",
                json={
                    "generation_id": generation["generation_id"],
                    "vote": vote,
                    "vote_token": generation["vote_token"],
                },
                headers=user,
            )
            if stored.status_code != httpx.codes.OK:
                raise SimulationError(f"a vote was refused: {stored.status_code} {stored.text}")
            result.served.append(generation["variant"])
            result.up_probabilities.append(up_probability)
            result.headlines.append(generation["headline"])
            model = generation["model"]
            result.models[generation["variant"]] = f"{model['name']} {model['version']}"
            window.append(generation["variant"])
        if index % checkpoint_every == 0 or index == requests:
            result.checkpoints.append(_checkpoint(client, index, window, result.better))
            window = []
        on_request()
    return result


def _checkpoint(client: httpx.Client, requests: int, window: list[str], better: str) -> Checkpoint:
    stats = _send(client, "GET", "api/stats")
    if stats.status_code != httpx.codes.OK:
        raise SimulationError(f"GET /api/stats failed: {stats.status_code} {stats.text}")
    share = sum(1 for variant in window if variant == better) / len(window) if window else 0.0
    return Checkpoint(requests, share, dict(stats.json()["verdict"]["probability_best"]))


def _send(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """The request, sent again after a growing wait while the API answers 429 (throttled)."""
    for attempt in range(THROTTLED_RETRIES):
        response = client.request(method, url, **kwargs)
        if response.status_code != httpx.codes.TOO_MANY_REQUESTS:
            break
        time.sleep(THROTTLED_FIRST_WAIT_S * 2**attempt)
    return response
