"""Virtual key material: generation and hashing. Keys are `jk-` + 43 url-safe chars
(256 bits); only SHA-256 is stored (a fast hash is right here: the key is random,
so there is nothing to brute-force, and the hot path hashes on every request)."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "jk-"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:10]
