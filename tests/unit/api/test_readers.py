"""Reader identity: keyed reader hashes, vote tokens, and where the reader's id comes from."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from aws_lambda_powertools.event_handler.request import Request
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from pressroom_common.platform.errors import VoteNotAllowed
from pressroom_common.platform.readers import ANONYMOUS_READER, ReaderKeys, reader_id
from pressroom_common.platform.settings import ReaderKeySettings
from pydantic import ValidationError

from local.devstack.reader_key import ensure_reader_key
from local.emulate.events import proxy_event
from tests.fixtures.readers import TEST_READER_KEYS, reader_hash

OTHER_KEYS = ReaderKeys(b"another deployment's reader key, 32+ bytes long")


def test_a_reader_hash_is_keyed_so_a_guessed_id_cannot_be_checked_against_it() -> None:
    stored = reader_hash("alice@example.com")

    assert len(stored) == 64 and int(stored, 16) >= 0
    assert stored != hashlib.sha256(b"alice@example.com").hexdigest()
    assert stored != OTHER_KEYS.reader_hash("alice@example.com")
    assert stored == reader_hash(" alice@example.com ")
    assert stored != reader_hash("Alice@example.com")


def test_a_reader_without_an_id_is_the_anonymous_marker_which_no_id_hashes_to() -> None:
    assert reader_hash(None) == reader_hash("") == reader_hash("  ") == ANONYMOUS_READER
    assert reader_hash("anonymous") != ANONYMOUS_READER
    assert TEST_READER_KEYS.vote_token("g1", ANONYMOUS_READER) is None


def test_the_token_of_a_generation_lets_its_reader_vote() -> None:
    alice = reader_hash("alice")
    token = TEST_READER_KEYS.vote_token("g1", alice)

    assert token is not None and len(token) == 43
    TEST_READER_KEYS.check_vote("g1", alice, token)  # no error


def flipped(token: str) -> str:
    return ("A" if token[0] != "A" else "B") + token[1:]


@pytest.mark.parametrize(
    ("voter", "generation", "token_of", "field"),
    [
        (
            "bob",
            "g1",
            lambda: TEST_READER_KEYS.vote_token("g1", reader_hash("alice")),
            "vote_token",
        ),
        (
            "alice",
            "g2",
            lambda: TEST_READER_KEYS.vote_token("g1", reader_hash("alice")),
            "vote_token",
        ),
        (
            "alice",
            "g1",
            lambda: flipped(TEST_READER_KEYS.vote_token("g1", reader_hash("alice")) or ""),
            "vote_token",
        ),
        ("alice", "g1", lambda: OTHER_KEYS.vote_token("g1", reader_hash("alice")), "vote_token"),
        ("alice", "g1", lambda: "made-up-token", "vote_token"),
        ("alice", "g1", lambda: None, "vote_token"),
        ("alice", "g1", lambda: "", "vote_token"),
        (None, "g1", lambda: TEST_READER_KEYS.vote_token("g1", reader_hash("alice")), "X-User-Id"),
    ],
    ids=[
        "another reader with the token",
        "the token replayed on another generation",
        "an altered token",
        "a token of another key",
        "a made-up token",
        "no token",
        "an empty token",
        "no reader id",
    ],
)
def test_any_other_vote_is_refused_naming_why(
    voter: str | None, generation: str, token_of: object, field: str
) -> None:
    assert callable(token_of)
    with pytest.raises(VoteNotAllowed) as refused:
        TEST_READER_KEYS.check_vote(generation, reader_hash(voter), token_of())

    assert refused.value.status == 403
    assert refused.value.code == "vote_not_allowed"
    assert refused.value.field == field
    assert refused.value.message.startswith(f"{field}: ")


def test_the_key_must_come_from_exactly_one_place() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        ReaderKeySettings(reader_key_file="", reader_key_secret_id="")
    with pytest.raises(ValidationError, match="exactly one"):
        ReaderKeySettings(reader_key_file="/k", reader_key_secret_id="arn:aws:secretsmanager:x")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        ReaderKeys(b"short")


def test_the_local_key_is_created_once_for_its_owner_only(tmp_path: Path) -> None:
    path = ensure_reader_key(tmp_path / "local" / "reader-key")
    first = path.read_text()

    assert ensure_reader_key(path).read_text() == first
    assert path.stat().st_mode & 0o777 == 0o600
    assert ReaderKeys.from_file(path).reader_hash("a") != reader_hash("a")


def request_for(headers: list[tuple[str, str]], authorizer: dict[str, object] | None) -> Request:
    event = proxy_event("POST", "/api/feedback", headers=headers)
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    return Request("/api/feedback", {}, APIGatewayProxyEvent(event))


def test_the_reader_is_the_header_without_an_authorizer() -> None:
    assert reader_id(request_for([("X-User-Id", "alice")], None)) == "alice"
    assert reader_id(request_for([], None)) is None


@pytest.mark.parametrize(
    "authorizer",
    [{"claims": {"sub": "cognito-sub-1"}}, {"principalId": "cognito-sub-1"}],
    ids=["Cognito user pool", "Lambda authorizer"],
)
def test_an_authorizer_identity_wins_over_the_header(authorizer: dict[str, object]) -> None:
    assert reader_id(request_for([("X-User-Id", "mallory")], authorizer)) == "cognito-sub-1"
