"""Provider secrets at rest: Fernet (MultiFernet for key rotation).

Keys come from GATEWAY_ENCRYPTION_KEYS (comma-separated Fernet keys, first one
encrypts) or, when unset, one derived from SECRET_KEY, so the embedded profile
works with zero configuration. Keys derived from SECRET_KEY_FALLBACKS (and from
SECRET_KEY when explicit keys are set) still decrypt: rotate by moving the old
SECRET_KEY to SECRET_KEY_FALLBACKS (or prepending a new GATEWAY_ENCRYPTION_KEYS
entry), then `manage.py rotate_secrets` re-encrypts everything with the first key.

A value no configured key decrypts reads as UnreadableSecret (empty) instead of
failing the query: the snapshot leaves that provider out and /health/ready says
why (gateway/snapshot.py), rather than every request failing.
"""

from __future__ import annotations

import base64
import functools
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

PREFIX = "fernet:"


def _derived(secret_key: str) -> str:
    digest = hashlib.sha256(("junction-secrets:" + secret_key).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


@functools.cache
def _fernet() -> MultiFernet:
    fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", ())
    derived = [_derived(settings.SECRET_KEY)] + [_derived(k) for k in fallbacks]
    keys = list(settings.GATEWAY_ENCRYPTION_KEYS) + derived  # the first one encrypts
    unique = list(dict.fromkeys(k.decode() if isinstance(k, bytes) else k for k in keys))
    return MultiFernet([Fernet(k.encode()) for k in unique])


def reset_keys() -> None:
    """Forget the cached keys (tests, after changing settings)."""
    _fernet.cache_clear()


class UnreadableSecret(str):
    """A stored secret no configured key decrypts: reads as "" and keeps its ciphertext,
    so saving the row again does not destroy it (the old key may come back)."""

    ciphertext = ""


def rotate(token: str) -> str:
    """Re-encrypt a stored value with the first key (ValueError if no key reads it)."""
    if not token.startswith(PREFIX):
        return encrypt(token)
    try:
        return PREFIX + _fernet().rotate(token[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise ValueError("cannot decrypt a stored secret with the configured keys") from None


def encrypt(value: str) -> str:
    return PREFIX + _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    if not token.startswith(PREFIX):
        return token
    try:
        return _fernet().decrypt(token[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise ValueError("cannot decrypt a stored secret: was the encryption key changed?") from None


class EncryptedTextField(models.TextField):
    """Stores Fernet ciphertext; Python side sees the plaintext. Empty stays empty."""

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        try:
            return decrypt(value)
        except ValueError:
            unreadable = UnreadableSecret("")
            unreadable.ciphertext = value
            return unreadable

    def get_prep_value(self, value):
        if isinstance(value, UnreadableSecret):
            return value.ciphertext
        value = super().get_prep_value(value)
        if not value:
            return value
        return encrypt(value)
