"""Adaptive experiments: Thompson-sampling routing on feedback, and a per-variant guardrail.

`ThompsonSampling` is a `RoutingStrategy` (see `routing`): it reads the variants' vote counts
from the feedback store, at most once every few seconds per Lambda instance, and routes each
request by draws of the up-rates from their Beta posteriors (top-two Thompson sampling). `Guardrail`
watches every variant's outcomes in a sliding window and takes a failing or slow variant out of
routing for a cool-down. Both keep their state in-process (one Lambda instance each), so neither
adds a database query to a request.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit

from pressroom_common.experiment.settings import (
    GuardrailThresholds,
    Strategy,
    ThompsonParameters,
    VariantConfig,
)
from pressroom_common.experiment.statistics import percentile, up_rate_posterior
from pressroom_common.platform.errors import DomainError
from pressroom_common.platform.observability import logger, record_variant_metric

Clock = Callable[[], float]


class VariantCountsSource(Protocol):
    """The part of the feedback store Thompson sampling reads."""

    def variant_counts(self, since: datetime | None = None) -> dict[str, tuple[int, int, int]]: ...


class WeightedStrategy(Protocol):
    """What routes the warm-up (`routing.FixedWeights`), kept structural to avoid an import
    cycle: the routing module registers this one."""

    def choose(self, user_hash: str | None, variants: Mapping[str, VariantConfig]) -> str: ...


def _in_background(refresh: Callable[[], None]) -> None:
    threading.Thread(target=refresh, name="thompson-refresh", daemon=True).start()


class ThompsonSampling:
    """Top-two Thompson sampling on the round's votes, after a canary warm-up.

    Until every variant has `warmup_votes` votes, traffic follows the weights (`warmup`): a new
    challenger serves its canary share while its first votes come in and the guardrail watches
    it. After that each request draws every variant's up-rate from its posterior
    (`statistics.up_rate_posterior`); the highest draw (the leader) serves it with probability
    `top_two_probability`, and otherwise the variant that leads a fresh draw without it (the
    challenger of the leader). At 1.0 that is plain Thompson sampling, which sends almost all
    traffic to a likely winner and so starves the evidence a decision needs; at the default 0.5
    the two best candidates share the traffic, which decides a round in the fewest readers
    (top-two Thompson sampling, Russo 2016; `make bench-rounds` measures both).
    Variants with weight 0 are out of the experiment. Only the generations since `since` (the
    experiment round's start; all time when None) count, so a round's new challenger starts
    from a warm-up of its own. Counts are cached for `refresh_s` and re-read off the request
    path: a request that finds them stale starts one refresh (`run_refresh`, a background
    thread by default) and routes on the counts it has. If the store cannot be read, the last
    counts are used (and before any, the weights).
    """

    name = Strategy.THOMPSON

    def __init__(
        self,
        counts: VariantCountsSource,
        warmup: WeightedStrategy,
        parameters: ThompsonParameters,
        *,
        since: datetime | None = None,
        rng: random.Random | None = None,
        clock: Clock = time.monotonic,
        run_refresh: Callable[[Callable[[], None]], None] = _in_background,
    ) -> None:
        self._counts = counts
        self._run_refresh = run_refresh
        self._warmup = warmup
        self._warmup_votes = parameters.warmup_votes
        self._top_two_probability = parameters.top_two_probability
        self._refresh_s = parameters.refresh_s
        self._since = since
        self._rng = rng or random.Random()  # noqa: S311 - exploration, not cryptography
        self._clock = clock
        self._cached: dict[str, tuple[int, int, int]] | None = None
        self._read_at = -math.inf
        self._lock = threading.Lock()
        self._refreshing = False

    def choose(self, user_hash: str | None, variants: Mapping[str, VariantConfig]) -> str:
        eligible = sorted(name for name, variant in variants.items() if variant.weight > 0)
        counts = self._current_counts()
        if counts is None:
            return self._warmup.choose(user_hash, variants)
        votes = {name: counts.get(name, (0, 0, 0))[1:] for name in eligible}
        if any(up + down < self._warmup_votes for up, down in votes.values()):
            return self._warmup.choose(user_hash, variants)
        leader = self._leader(votes)
        if len(eligible) < 2 or self._rng.random() < self._top_two_probability:
            return leader
        others = {name: counts for name, counts in votes.items() if name != leader}
        return self._leader(others)

    def _leader(self, votes: Mapping[str, tuple[int, int]]) -> str:
        """The variant whose up-rate drawn from its posterior is highest."""
        draws = {
            name: self._rng.betavariate(*up_rate_posterior(up, down))
            for name, (up, down) in votes.items()
        }
        return max(sorted(draws), key=lambda name: draws[name])

    def _current_counts(self) -> dict[str, tuple[int, int, int]] | None:
        with self._lock:
            now = self._clock()
            start_refresh = now - self._read_at >= self._refresh_s and not self._refreshing
            if start_refresh:
                # Stamp first: a failing store is retried after `refresh_s`, not on every request.
                self._read_at = now
                self._refreshing = True
            cached = self._cached
        if start_refresh:
            self._run_refresh(self._refresh)
            with self._lock:  # a synchronous `run_refresh` has the new counts already
                cached = self._cached
        return cached

    def _refresh(self) -> None:
        try:
            counts = self._counts.variant_counts(self._since)
        except DomainError as error:
            logger.warning(
                "thompson sampling could not refresh the vote counts; using the last ones",
                extra={"error": error.code, "has_counts": self._cached is not None},
            )
            counts = None
        with self._lock:
            if counts is not None:
                self._cached = counts
            self._refreshing = False


@dataclass(frozen=True)
class _Outcome:
    at: float
    ok: bool
    latency_ms: float


class Guardrail:
    """Drain a variant whose recent error rate or p95 latency crosses a threshold.

    Outcomes (one per generator invocation, fed by the generate flow) are kept for `window_s`;
    once a variant has `min_requests` of them, crossing `max_error_rate` or
    `max_p95_latency_ms` (p95 of the successful calls) drains it for `cooldown_s`: routing skips
    it until then, and it comes back with a fresh window. The last healthy variant in the
    experiment is never drained, since answering slowly beats not answering.
    """

    def __init__(
        self,
        variants: Mapping[str, VariantConfig],
        thresholds: GuardrailThresholds,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        # The variants routing may send traffic to; one of them always stays in service.
        self._routed = frozenset(name for name, config in variants.items() if config.weight > 0)
        self._thresholds = thresholds
        self._clock = clock
        self._outcomes: dict[str, deque[_Outcome]] = {}
        self._drained_until: dict[str, float] = {}
        self._held: set[str] = set()  # tripped, but kept as the last healthy variant
        self._lock = threading.Lock()

    def record(self, variant: str, *, ok: bool, latency_ms: float) -> None:
        now = self._clock()
        with self._lock:
            window = self._outcomes.setdefault(variant, deque())
            window.append(_Outcome(now, ok, latency_ms))
            while window and window[0].at <= now - self._thresholds.window_s:
                window.popleft()
            if variant not in self._drained_until:
                self._check(variant, window, now)

    def healthy(self, variants: Mapping[str, VariantConfig]) -> dict[str, VariantConfig]:
        """The variants routing may use now; restores those whose cool-down has passed."""
        with self._lock:
            self._restore_due(self._clock())
            return {name: config for name, config in variants.items() if self.is_serving(name)}

    def is_serving(self, variant: str) -> bool:
        return variant not in self._drained_until

    def _check(self, variant: str, window: deque[_Outcome], now: float) -> None:
        if len(window) < self._thresholds.min_requests:
            return
        reason = self._breach(window)
        if reason is None:
            self._held.discard(variant)
            return
        others_serving = any(
            name != variant and name not in self._drained_until for name in self._routed
        )
        if not others_serving:
            if variant not in self._held:
                self._held.add(variant)
                logger.warning(
                    "guardrail tripped on the last healthy variant; keeping it in service",
                    extra={"variant": variant, **reason},
                )
            return
        self._drained_until[variant] = now + self._thresholds.cooldown_s
        logger.warning(
            "guardrail drained a variant",
            extra={"variant": variant, "cooldown_s": self._thresholds.cooldown_s, **reason},
        )
        record_variant_metric("GuardrailDrains", 1, MetricUnit.Count, variant=variant)

    def _breach(self, window: deque[_Outcome]) -> dict[str, object] | None:
        """Why the window breaches a threshold (for the log), or None."""
        errors = sum(1 for outcome in window if not outcome.ok)
        error_rate = errors / len(window)
        latencies = [outcome.latency_ms for outcome in window if outcome.ok]
        p95 = percentile(latencies, 0.95) if latencies else None
        evidence: dict[str, object] = {
            "window_requests": len(window),
            "error_rate": round(error_rate, 4),
            "p95_latency_ms": p95,
        }
        if error_rate > self._thresholds.max_error_rate:
            return {
                "reason": "error_rate",
                "threshold": self._thresholds.max_error_rate,
                **evidence,
            }
        if p95 is not None and p95 > self._thresholds.max_p95_latency_ms:
            return {
                "reason": "p95_latency",
                "threshold": self._thresholds.max_p95_latency_ms,
                **evidence,
            }
        return None

    def _restore_due(self, now: float) -> None:
        for variant, until in list(self._drained_until.items()):
            if now >= until:
                del self._drained_until[variant]
                self._outcomes.pop(variant, None)  # judged afresh, not on the failures it had
                logger.info("guardrail restored a variant", extra={"variant": variant})


def build_guardrail(
    enabled: bool,
    *,
    variants: Mapping[str, VariantConfig],
    thresholds: GuardrailThresholds = GuardrailThresholds(),
) -> Guardrail | None:
    """The guardrail a deployment's `GUARDRAIL_ENABLED` asks for, over the routed `variants`,
    with its `thresholds`; None when disabled. Built the way `routing.build_strategy` builds the
    strategy, from its parameters."""
    return Guardrail(variants, thresholds) if enabled else None
