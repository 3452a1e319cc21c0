"""Vote stuffing through the local stack over real HTTP: refused, and nothing moves."""

from __future__ import annotations

from local.devstack.stack import LocalStack
from qa.reliability.stuffing import vote_stuffing
from tests.fixtures.stack import UNTHROTTLED


def test_votes_on_another_readers_headline_are_refused_and_move_nothing(
    local_stack: LocalStack,
) -> None:
    with local_stack.alternate_gateway(UNTHROTTLED) as url:
        expectations = vote_stuffing(url, local_stack.database_url)

    assert len(expectations) == 3
    assert [f"{e.name}: {e.evidence}" for e in expectations if not e.held] == []
