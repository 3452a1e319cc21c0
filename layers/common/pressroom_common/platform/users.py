"""User identity: the API only ever stores a hash of the `X-User-Id` header."""

import hashlib

ANONYMOUS_USER = "anonymous"


def hash_user_id(user_id: str | None) -> str:
    """Return the sha256 hex digest of the user id; a missing or blank id counts as anonymous."""
    normalized = (user_id or "").strip() or ANONYMOUS_USER
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()
