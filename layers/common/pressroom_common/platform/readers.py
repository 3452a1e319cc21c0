"""Reader identity: who asks, how the store remembers them, and who may vote on what.

One secret (the reader key: Secrets Manager on AWS, a local key file under `pressroom up`)
derives two keys, one per use, so a value made for one purpose never passes for the other:
- the **reader hash** stored with every generation and vote is an HMAC of the reader's id, not a
  bare SHA-256 that anyone could recompute from a guessed id (an email, say);
- the **vote token** that `POST /api/generate` returns is an HMAC over the generation id and that
  reader hash: `POST /api/feedback` counts a vote only with the token of a generation served to
  the same reader, so nobody votes on anyone else's headline, or votes without reading one.

Where the reader's id comes from: an API Gateway authorizer's identity when the deployment has
one (a Cognito user pool's `sub`, a Lambda authorizer's `principalId`), otherwise the client's
`X-User-Id` header, which the client chooses (the local stack and the reference deployment).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

from aws_lambda_powertools.event_handler.request import Request

from pressroom_common.platform.errors import VoteNotAllowed
from pressroom_common.platform.settings import ReaderKeySettings

USER_ID_HEADER = "X-User-Id"
# What the store keeps for a reader without an id: no HMAC output looks like it (64 hex digits).
ANONYMOUS_READER = "anonymous"
# Read at cold start only; the secret itself never reaches a log line.
_READER_HASH_LABEL = b"pressroom reader id v1"
_VOTE_TOKEN_LABEL = b"pressroom vote token v1"
MIN_SECRET_BYTES = 32


class ReaderKeys:
    """The reader hash and the vote token, both keyed by the reader key."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the reader key must hold at least {MIN_SECRET_BYTES} bytes")
        self._hash_key = hmac.digest(secret, _READER_HASH_LABEL, hashlib.sha256)
        self._token_key = hmac.digest(secret, _VOTE_TOKEN_LABEL, hashlib.sha256)

    @classmethod
    def from_file(cls, path: Path) -> ReaderKeys:
        """The keys of a local key file (`pressroom up` writes one)."""
        return cls(path.read_bytes().strip())

    def reader_hash(self, reader_id: str | None) -> str:
        """What the store keeps for this reader: HMAC-SHA256 hex, or `ANONYMOUS_READER`."""
        normalized = (reader_id or "").strip()
        if not normalized:
            return ANONYMOUS_READER
        return hmac.new(self._hash_key, normalized.encode("utf-8"), hashlib.sha256).hexdigest()

    def vote_token(self, generation_id: str, reader_hash: str) -> str | None:
        """The token that lets this reader, and only them, vote on this generation; None for an
        anonymous reader, who may read but not vote."""
        if reader_hash == ANONYMOUS_READER:
            return None
        return _encode(self._mac(generation_id, reader_hash))

    def check_vote(self, generation_id: str, reader_hash: str, token: str | None) -> None:
        """Raise `VoteNotAllowed`, naming why, unless `token` was issued for this generation to
        this reader."""
        if reader_hash == ANONYMOUS_READER:
            raise VoteNotAllowed(
                USER_ID_HEADER,
                "anonymous readers cannot vote: send the id you generated with",
                location="header",
            )
        if not token:
            raise VoteNotAllowed("vote_token", "missing: send the vote_token of the generation")
        expected = _encode(self._mac(generation_id, reader_hash))
        if not hmac.compare_digest(expected.encode("ascii"), token.encode("utf-8")):
            raise VoteNotAllowed(
                "vote_token",
                "not issued for this generation to this reader: only the reader it was served "
                "to may vote on it",
            )

    def _mac(self, generation_id: str, reader_hash: str) -> bytes:
        # The reader hash is fixed-length hex, so the separator keeps the fields apart.
        message = f"{generation_id}\n{reader_hash}".encode()
        return hmac.digest(self._token_key, message, hashlib.sha256)


def _encode(mac: bytes) -> str:
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def load_reader_keys(settings: ReaderKeySettings) -> ReaderKeys:
    """Read the reader key once per cold start (Powertools' Parameters caches the secret)."""
    if settings.reader_key_file:
        return ReaderKeys.from_file(Path(settings.reader_key_file))
    from aws_lambda_powertools.utilities.parameters import get_secret

    secret = get_secret(settings.reader_key_secret_id)
    return ReaderKeys(secret.encode("utf-8") if isinstance(secret, str) else secret)


def reader_id(request: Request) -> str | None:
    """The route dependency naming the reader: an authorizer's identity where the API has an
    authorizer (the header is then ignored), else the `X-User-Id` header, if any."""
    authorizer = request.resolved_event.request_context.authorizer  # type: ignore[attr-defined]
    identity = authorizer.claims.get("sub") or authorizer.principal_id
    if identity:
        return str(identity)
    return request.headers.get(USER_ID_HEADER)
