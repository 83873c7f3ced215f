"""Virtual key authentication against the in-memory snapshot (no DB hit)."""

from __future__ import annotations

import time

from gateway.keys import hash_key
from providers.codecs.errors import GatewayError
from routing.table import ConfigSnapshot, KeyInfo


def presented_key(scope: dict, path_key: str | None) -> str | None:
    if path_key:
        return path_key
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name in (b"x-api-key", b"api-key") and value:
            return value.decode("latin-1").strip()
    return None


def authenticate(scope: dict, snapshot: ConfigSnapshot, path_key: str | None = None) -> KeyInfo:
    key = presented_key(scope, path_key)
    info = snapshot.keys.get(hash_key(key)) if key else None
    if info is None:
        if snapshot.anonymous is not None:
            return snapshot.anonymous
        if not key:
            raise GatewayError("authentication", "Missing API key: send `Authorization: Bearer <key>`, "
                                                 "`x-api-key` or `api-key`.", 401, code="missing_api_key")
        raise GatewayError("authentication", "Invalid API key.", 401, code="invalid_api_key")
    if info.revoked:
        raise GatewayError("authentication", "This API key has been revoked.", 401, code="invalid_api_key")
    if info.expires_at is not None and info.expires_at <= time.time():
        raise GatewayError("authentication", "This API key has expired.", 401, code="invalid_api_key")
    return info
