"""The local reader key: what Secrets Manager holds on AWS, a file here.

`pressroom up` creates it on first run and keeps it, so reader hashes and vote tokens stay
valid across restarts of the same store; deleting it re-keys every reader.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from local.paths import BUILD_DIR

DEFAULT_READER_KEY_FILE = BUILD_DIR / "local" / "reader-key"
KEY_BYTES = 32


def ensure_reader_key(path: Path = DEFAULT_READER_KEY_FILE) -> Path:
    """Create the key file unless it exists: random bytes, hex, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path  # kept from an earlier run (or created by a concurrent one)
    with os.fdopen(descriptor, "w", encoding="ascii") as key_file:
        key_file.write(secrets.token_hex(KEY_BYTES))
    return path
