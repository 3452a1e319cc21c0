"""Bounded concurrent load through the local stack: every accepted generation and vote is
stored, none twice (the gateway's function instances and the store under concurrency)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import sqlalchemy as sa

from local.devstack.stack import LocalStack
from tests.fixtures.stack import UNTHROTTLED

CLIENTS = 8
REQUESTS_PER_CLIENT = 3


def generate_and_vote(base_url: str, client_number: int) -> list[tuple[int, int, str]]:
    """(generate status, vote status, generation id) for each request of one client."""
    results = []
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for n in range(REQUESTS_PER_CLIENT):
            user = {"X-User-Id": f"load-{client_number}"}
            generated = client.post(
                "/api/generate",
                json={"prompt": f"Load {client_number}-{n}", "variant": "B", "max_new_tokens": 4},
                headers=user,
            )
            generation = generated.json()
            generation_id = generation.get("generation_id", "")
            vote = client.post(
                "/api/feedback",
                json={
                    "generation_id": generation_id,
                    "vote": "up" if n % 2 else "down",
                    "vote_token": generation.get("vote_token"),
                },
                headers=user,
            )
            results.append((generated.status_code, vote.status_code, generation_id))
    return results


def test_concurrent_generations_and_votes_are_all_accounted_for(local_stack: LocalStack) -> None:
    # 48 requests at once: past what the session stack's stage throttle has left after earlier
    # tests (its 429s are tested in test_gateway_limits), which is not what this test counts.
    with (
        local_stack.alternate_gateway(UNTHROTTLED) as url,
        ThreadPoolExecutor(max_workers=CLIENTS) as pool,
    ):
        outcomes = [
            result
            for results in pool.map(generate_and_vote, [url] * CLIENTS, range(CLIENTS))
            for result in results
        ]

    assert {(generated, voted) for generated, voted, _ in outcomes} == {(200, 200)}
    ids = [generation_id for _, _, generation_id in outcomes]
    engine = sa.create_engine(local_stack.database_url)
    with engine.connect() as connection:
        stored = (
            connection.execute(sa.text("SELECT id FROM generations WHERE prompt LIKE 'Load %'"))
            .scalars()
            .all()
        )
        votes = connection.execute(
            sa.text(
                "SELECT COUNT(*) FROM votes JOIN generations ON generations.id = "
                "votes.generation_id WHERE generations.prompt LIKE 'Load %'"
            )
        ).scalar_one()
    engine.dispose()
    assert sorted(stored) == sorted(ids)
    assert len(set(ids)) == CLIENTS * REQUESTS_PER_CLIENT
    assert votes == CLIENTS * REQUESTS_PER_CLIENT
