"""Bounded load through the gateway: concurrent clients generate, then vote on what they got.

Every request is decided by a fixed seed (prompt, vote, user), so two runs send the same traffic.
The result keeps each acknowledged vote, so the store can be checked to hold exactly those.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from pressroom_common.experiment.statistics import percentile

PROMPTS = (
    "Markets rally as",
    "Government announces",
    "Football club signs",
    "Film star returns",
    "New smartphone",
    "Scientists discover",
    "Elections loom as",
    "Tech giant plans",
)
VOTES = ("up", "down")


@dataclass(frozen=True)
class AcknowledgedVote:
    generation_id: str
    user_id: str
    vote: str


@dataclass
class RouteFigures:
    """Status codes and latencies of one route, as the clients saw them."""

    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def percentile(self, q: float) -> float:
        """The q-th percentile latency in milliseconds (0 when nothing was measured)."""
        return percentile(self.latencies_ms, q / 100) if self.latencies_ms else 0.0

    def add(self, status: int, latency_ms: float) -> None:
        self.statuses[status] += 1
        self.latencies_ms.append(latency_ms)

    def merge(self, other: RouteFigures) -> None:
        self.statuses.update(other.statuses)
        self.latencies_ms.extend(other.latencies_ms)

    def status_summary(self) -> str:
        return ", ".join(f"{status}: {count}" for status, count in sorted(self.statuses.items()))


@dataclass
class LoadResult:
    generate: RouteFigures = field(default_factory=RouteFigures)
    feedback: RouteFigures = field(default_factory=RouteFigures)
    acknowledged: list[AcknowledgedVote] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    """Responses outside the statuses the run allows, as `route status: body`."""
    wall_s: float = 0.0

    def merge(self, other: LoadResult) -> None:
        self.generate.merge(other.generate)
        self.feedback.merge(other.feedback)
        self.acknowledged.extend(other.acknowledged)
        self.unexpected.extend(other.unexpected)


@dataclass(frozen=True)
class LoadPlan:
    """`requests` generations, each followed by one vote on it from the same user."""

    requests: int
    clients: int = 16
    seed: int = 20261126
    max_new_tokens: int = 4
    variant: str | None = "B"
    """Pinned for volume (the lite model); None lets the routing strategy assign each user."""
    users: int = 64
    label: str = "load"
    """Prefix of the prompts and user ids, so the store's rows of a run can be found."""
    allowed_statuses: frozenset[int] = frozenset({200})

    def request(self, number: int) -> tuple[str, dict[str, Any], str]:
        """(user id, generate body, vote) of request `number`, from the seed alone."""
        rng = random.Random(self.seed * 1_000_003 + number)  # noqa: S311 - test traffic
        body: dict[str, Any] = {
            "prompt": f"{rng.choice(PROMPTS)} [{self.label} {number}]",
            "max_new_tokens": self.max_new_tokens,
            "seed": rng.randrange(2**32),
        }
        if self.variant is not None:
            body["variant"] = self.variant
        return f"{self.label}-user-{rng.randrange(self.users)}", body, rng.choice(VOTES)


def run_load(
    base_url: str,
    plan: LoadPlan,
    *,
    on_progress: Callable[[int], None] = lambda _: None,
    stop: threading.Event | None = None,
) -> LoadResult:
    """Run the plan with `plan.clients` concurrent clients; `stop` ends it early (fault runs)."""
    started = time.perf_counter()
    shares = [range(client, plan.requests, plan.clients) for client in range(plan.clients)]
    with ThreadPoolExecutor(max_workers=plan.clients, thread_name_prefix="load") as pool:
        results = list(
            pool.map(lambda share: _client(base_url, plan, share, on_progress, stop), shares)
        )
    total = LoadResult()
    for result in results:
        total.merge(result)
    total.wall_s = time.perf_counter() - started
    return total


def _client(
    base_url: str,
    plan: LoadPlan,
    numbers: Iterable[int],
    on_progress: Callable[[int], None],
    stop: threading.Event | None,
) -> LoadResult:
    result = LoadResult()
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for number in numbers:
            if stop is not None and stop.is_set():
                break
            user, body, vote = plan.request(number)
            headers = {"X-User-Id": user}
            generated = _timed(client, "/api/generate", body, headers, result.generate)
            _note_unexpected(result, plan, "generate", generated)
            if generated.status_code == httpx.codes.OK:
                generation = generated.json()
                generation_id = generation["generation_id"]
                voted = _timed(
                    client,
                    "/api/feedback",
                    {
                        "generation_id": generation_id,
                        "vote": vote,
                        "vote_token": generation["vote_token"],
                    },
                    headers,
                    result.feedback,
                )
                _note_unexpected(result, plan, "feedback", voted)
                if voted.is_success:
                    result.acknowledged.append(AcknowledgedVote(generation_id, user, vote))
            on_progress(1)
    return result


def _timed(
    client: httpx.Client,
    path: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    figures: RouteFigures,
) -> httpx.Response:
    started = time.perf_counter()
    response = client.post(path, json=body, headers=headers)
    figures.add(response.status_code, (time.perf_counter() - started) * 1000)
    return response


def _note_unexpected(
    result: LoadResult, plan: LoadPlan, route: str, response: httpx.Response
) -> None:
    if response.status_code not in plan.allowed_statuses:
        result.unexpected.append(f"{route} {response.status_code}: {response.text[:200]}")
