"""Vote stuffing: every way a client with a loop might vote on a headline that is not its own.

One reader generates a headline; the attempts vote on it under other ids (with and without
the reader's token), with no id, with a made-up token, without the token, and with the token
replayed on another generation. Each must answer 403 `vote_not_allowed`, and neither
`/api/stats` nor the store may move; then the reader's own vote counts, once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from qa.reliability.outcome import Expectation, expect
from qa.reliability.records import row_counts

AREA = "vote stuffing"
READER = "stuffing-target-reader"
OTHER_READERS = 20


@dataclass(frozen=True)
class StuffingAttempt:
    name: str
    body: dict[str, Any]
    headers: dict[str, str]


def stuffing_attempts(
    reader: str, generation_id: str, token: str | None, other_generation_id: str
) -> list[StuffingAttempt]:
    """The attempts on `reader`'s generation (`token` is the one it was served with)."""
    body = {"generation_id": generation_id, "vote": "up"}
    others = [f"stuffer-{n}" for n in range(OTHER_READERS)]
    return [
        *(StuffingAttempt("another id, no token", body, {"X-User-Id": o}) for o in others),
        *(
            StuffingAttempt(
                "another id, the reader's token",
                {**body, "vote_token": token},
                {"X-User-Id": other},
            )
            for other in others
        ),
        StuffingAttempt("no id, the reader's token", {**body, "vote_token": token}, {}),
        StuffingAttempt("no id, no token", body, {}),
        StuffingAttempt(
            "the reader, a made-up token", {**body, "vote_token": "made-up"}, {"X-User-Id": reader}
        ),
        StuffingAttempt("the reader, no token", body, {"X-User-Id": reader}),
        StuffingAttempt(
            "the reader's token replayed on another generation",
            {"generation_id": other_generation_id, "vote": "up", "vote_token": token},
            {"X-User-Id": reader},
        ),
    ]


def _votes_counted(client: httpx.Client) -> int:
    stats = client.get("/api/stats").raise_for_status().json()
    return sum(variant["up"] + variant["down"] for variant in stats["variants"])


def vote_stuffing(base_url: str, database_url: str) -> list[Expectation]:
    """Run every attempt through the gateway; the expectations say what held."""
    reader = {"X-User-Id": READER}
    with httpx.Client(base_url=base_url, timeout=120) as client:
        generated = [
            client.post(
                "/api/generate",
                json={"prompt": f"Stuffing target {n}", "variant": "B", "max_new_tokens": 2},
                headers=reader,
            )
            .raise_for_status()
            .json()
            for n in range(2)
        ]
        target, other = generated
        attempts = stuffing_attempts(
            READER, target["generation_id"], target["vote_token"], other["generation_id"]
        )
        counted_before, stored_before = _votes_counted(client), row_counts(database_url).votes
        answers = [
            client.post("/api/feedback", json=attempt.body, headers=attempt.headers)
            for attempt in attempts
        ]
        counted_after, stored_after = _votes_counted(client), row_counts(database_url).votes
        own = {"generation_id": target["generation_id"], "vote": "up"}
        own_answers = [
            client.post(
                "/api/feedback", json={**own, "vote_token": target["vote_token"]}, headers=reader
            ).status_code
            for _ in range(3)
        ]
        counted_own = _votes_counted(client)
    outcomes = Counter(
        f"{answer.status_code} {answer.json().get('error', {}).get('code')}" for answer in answers
    )
    refused = outcomes == Counter({"403 vote_not_allowed": len(attempts)})
    return [
        expect(
            AREA,
            f"{len(attempts)} votes on another reader's headline: each 403 vote_not_allowed",
            refused,
            ", ".join(f"{outcome}: {n}" for outcome, n in sorted(outcomes.items())),
        ),
        expect(
            AREA,
            "stuffing moved no count in /api/stats and stored no vote",
            (counted_after, stored_after) == (counted_before, stored_before),
            f"counted {counted_before}→{counted_after}, stored {stored_before}→{stored_after}",
        ),
        expect(
            AREA,
            "the reader's own vote counts once, however often it is sent",
            own_answers == [200] * 3 and counted_own == counted_after + 1,
            f"answers {own_answers}, counted {counted_after}→{counted_own}",
        ),
    ]
