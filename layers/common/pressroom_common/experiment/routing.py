"""A/B routing: which generator variant answers a request.

A `RoutingStrategy` picks among the configured variants; the `Router` applies an explicit
override first and knows the fallback for each variant. Strategies see the user's hash (None
for anonymous callers) and the variants' weights, so a Thompson-sampling strategy that reads
feedback counts from the store can be added beside `FixedWeights` without touching callers.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pressroom_common.experiment.adaptive import Guardrail, ThompsonSampling, VariantCountsSource
from pressroom_common.experiment.settings import (
    WEIGHTED_STRATEGY,
    RoutingStrategyName,
    Strategy,
    ThompsonParameters,
    VariantConfig,
)
from pressroom_common.platform.errors import ValidationError


@dataclass(frozen=True)
class Assignment:
    variant: str
    strategy: Strategy


class RoutingStrategy(Protocol):
    name: Strategy

    def choose(self, user_hash: str | None, variants: Mapping[str, VariantConfig]) -> str:
        """Return the name of the variant to serve; `user_hash` is None for anonymous users."""
        ...


class FixedWeights:
    """Split traffic by the configured weights; a known user always lands on the same variant.

    A user's position in [0, 1) is a stable hash of the salt and their user hash, so the
    assignment survives cold starts and is the same on every Lambda instance; changing the
    salt reshuffles everyone (a new experiment). Anonymous users get a fresh random draw, or
    they would all share one bucket and one variant.
    """

    name = WEIGHTED_STRATEGY

    def __init__(self, salt: str = "pressroom-ab-1", rng: random.Random | None = None) -> None:
        self._salt = salt
        self._rng = rng or random.Random()  # noqa: S311 - traffic splitting, not cryptography

    def choose(self, user_hash: str | None, variants: Mapping[str, VariantConfig]) -> str:
        position = self._rng.random() if user_hash is None else self.position(user_hash)
        return pick_by_weight(position, variants)

    def position(self, user_hash: str) -> float:
        digest = hashlib.sha256(f"{self._salt}:{user_hash}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64


def pick_by_weight(position: float, variants: Mapping[str, VariantConfig]) -> str:
    """Map a position in [0, 1) onto the variants' cumulative weights, in name order."""
    names = sorted(name for name, variant in variants.items() if variant.weight > 0)
    total = sum(variants[name].weight for name in names)
    cumulative = 0.0
    for name in names:
        cumulative += variants[name].weight / total
        if position < cumulative:
            return name
    return names[-1]  # float rounding can leave the cumulative sum a hair under 1


def build_strategy(
    name: RoutingStrategyName,
    *,
    counts: VariantCountsSource | None = None,
    counts_since: datetime | None = None,
    thompson: ThompsonParameters = ThompsonParameters(),
) -> RoutingStrategy:
    """The strategy a deployment's `ROUTING_STRATEGY` names, with its parameters; new
    strategies register here. `adaptive.build_guardrail` takes the guardrail's the same way.

    `thompson` reads the vote counts of the generations since `counts_since` (the experiment
    round's start; all time when None) from `counts` (the feedback store) and routes its
    warm-up by the weights.
    """

    def thompson_sampling() -> RoutingStrategy:
        if counts is None:
            raise ValueError("thompson routing needs the feedback store's vote counts")
        return ThompsonSampling(counts, FixedWeights(), thompson, since=counts_since)

    strategies: dict[Strategy, Callable[[], RoutingStrategy]] = {
        Strategy.FIXED: FixedWeights,
        Strategy.THOMPSON: thompson_sampling,
    }
    return strategies[name]()


class Router:
    """`guardrail`, when given, takes failing variants out of routing (not out of overrides)."""

    def __init__(
        self,
        strategy: RoutingStrategy,
        variants: Mapping[str, VariantConfig],
        guardrail: Guardrail | None = None,
    ) -> None:
        self._strategy = strategy
        self._variants = dict(variants)
        self._guardrail = guardrail

    def assign(self, user_hash: str | None, override: str | None = None) -> Assignment:
        if override is not None:
            if override not in self._variants:
                known = ", ".join(sorted(self._variants))
                raise ValidationError(
                    f"variant: unknown variant {override!r}; choose one of {known}",
                    details=[{"field": "variant", "location": "body", "reason": "unknown variant"}],
                )
            return Assignment(override, Strategy.OVERRIDE)
        routable = self._guardrail.healthy(self._variants) if self._guardrail else self._variants
        return Assignment(self._strategy.choose(user_hash, routable), self._strategy.name)

    def record_outcome(self, variant: str, *, ok: bool, latency_ms: float) -> None:
        """One generator invocation's result, for the guardrail."""
        if self._guardrail is not None:
            self._guardrail.record(variant, ok=ok, latency_ms=latency_ms)

    def fallback_for(self, variant: str) -> str | None:
        """The variant that answers when `variant` fails: another one, heaviest first."""
        others = sorted(
            (name for name in self._variants if name != variant),
            key=lambda name: (-self._variants[name].weight, name),
        )
        return others[0] if others else None

    def variant(self, name: str) -> VariantConfig:
        return self._variants[name]

    def has_variant(self, name: str) -> bool:
        return name in self._variants
