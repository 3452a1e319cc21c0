"""Token buckets: API Gateway's stage throttle, and one bucket per key for WAF's rate rules."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

# Full buckets are forgotten once this many keys are held, so rotating ids stay bounded.
PRUNE_AFTER_KEYS = 10_000


@dataclass(frozen=True)
class Throttle:
    rate_per_s: float
    burst: int


class TokenBucket:
    """API Gateway's throttling: `burst` tokens, refilled at `rate_per_s`; thread-safe."""

    def __init__(self, throttle: Throttle, clock: Any = time.monotonic) -> None:
        self._rate = throttle.rate_per_s
        self._capacity = float(throttle.burst)
        self._tokens = self._capacity
        self._clock = clock
        self._updated = clock()
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True

    def is_full(self) -> bool:
        """Refilled to its burst: no different from a bucket made now."""
        with self._lock:
            refilled = self._tokens + (self._clock() - self._updated) * self._rate
            return bool(refilled >= self._capacity)


class KeyedTokenBuckets:
    """One token bucket per key, made on first use; full ones are forgotten as keys pile up."""

    def __init__(
        self,
        throttle: Throttle,
        clock: Any = time.monotonic,
        prune_after: int = PRUNE_AFTER_KEYS,
    ) -> None:
        self._throttle = throttle
        self._clock = clock
        self._buckets: dict[tuple[str, ...], TokenBucket] = {}
        self._prune_after = prune_after
        self._prune_at = prune_after
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def try_acquire(self, key: tuple[str, ...]) -> bool:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._prune_at:
                    self._buckets = {k: b for k, b in self._buckets.items() if not b.is_full()}
                    self._prune_at = max(self._prune_after, 2 * len(self._buckets))
                bucket = self._buckets[key] = TokenBucket(self._throttle, self._clock)
        return bucket.try_acquire()
