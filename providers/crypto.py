"""Provider secrets at rest: Fernet (MultiFernet for key rotation).

Keys come from GATEWAY_ENCRYPTION_KEYS (comma-separated Fernet keys, first one
encrypts) or, when unset, one derived from SECRET_KEY, so the embedded profile
works with zero configuration. Rotating SECRET_KEY without setting
GATEWAY_ENCRYPTION_KEYS to the old derived key makes stored secrets unreadable.
"""

from __future__ import annotations

import base64
import functools
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

PREFIX = "fernet:"


@functools.cache
def _fernet() -> MultiFernet:
    keys = list(settings.GATEWAY_ENCRYPTION_KEYS)
    if not keys:
        digest = hashlib.sha256(("junction-secrets:" + settings.SECRET_KEY).encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])


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
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if not value:
            return value
        return encrypt(value)
