"""Votes as a training set: which are held out, and the hash that names exactly what was read."""

from dataclasses import replace
from datetime import UTC, datetime

from pressroom_common.feedback.store import Vote, VotedGeneration

from training.feedback.votes import held_out_generations, training_set_sha256


def _votes(up: int, down: int) -> list[VotedGeneration]:
    return [
        VotedGeneration(
            generation_id=f"gen-{index}",
            prompt="Stocks",
            text=f" rise {index}",
            variant="A",
            model_name="headline-base",
            model_version="v1",
            vote=Vote.UP if index < up else Vote.DOWN,
            voted_at=datetime(2026, 12, 1, tzinfo=UTC),
        )
        for index in range(up + down)
    ]


def test_one_voted_generation_in_ten_is_held_out_the_same_way_every_time() -> None:
    votes = _votes(up=95, down=40)
    held_out = held_out_generations(votes)
    assert len(held_out) == 13
    assert held_out == held_out_generations(list(reversed(votes)))
    assert held_out <= {vote.generation_id for vote in votes}


def test_at_least_one_generation_is_held_out() -> None:
    assert len(held_out_generations(_votes(up=2, down=6))) == 1


def test_the_training_set_hash_changes_with_any_vote_text_or_model() -> None:
    votes = _votes(up=3, down=3)
    original = training_set_sha256(votes)
    assert training_set_sha256(list(votes)) == original
    changed = [replace(votes[0], vote=Vote.DOWN), *votes[1:]]
    retexted = [replace(votes[0], text=" fall"), *votes[1:]]
    other_model = [replace(votes[0], model_version="v2"), *votes[1:]]
    assert len({original, *map(training_set_sha256, (changed, retexted, other_model))}) == 4
