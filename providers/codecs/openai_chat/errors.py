"""OpenAI Chat Completions: errors: encode_error / decode_error."""

from __future__ import annotations

import re

import orjson

from ..errors import GatewayError, is_retryable_status
from .wire import _ERROR_WIRE, _classify, _error_fields


def encode_error(codec, error: GatewayError) -> tuple[int, dict]:
    wire_type, code = _ERROR_WIRE.get(error.type, ("server_error", None))
    return error.status, {
        "error": {"message": error.message, "type": wire_type, "param": None, "code": error.code or code}
    }


def decode_error(codec, status: int, body: bytes) -> GatewayError:
    message = wire_type = code = None
    try:
        message, wire_type, code, _ = _error_fields(orjson.loads(body)) if body else (None, None, None, None)
    except Exception:  # not JSON (an HTML page from a proxy, a truncated body ...)
        pass
    if not message:
        message = _excerpt(body or b"")
    kind = _classify(status, message, code, wire_type)
    if kind == "context_length":
        code = "context_length_exceeded"  # one code for clients, whatever the server called it
    # "upstream error (HTTP n)" tells the user the provider said it, not the gateway.
    return GatewayError(
        kind,
        f"upstream error (HTTP {status}): {message}",
        status,
        retryable=is_retryable_status(status),
        code=code if isinstance(code, str) else None,
    )


_TAG_RE = re.compile(rb"<[^>]*>")


def _excerpt(body: bytes, limit: int = 200) -> str:
    head = body[:4096]
    if b"<" in head:
        head = _TAG_RE.sub(b" ", head)
    text = " ".join(head.decode("utf-8", "replace").split())
    if not text:
        return "(empty body)"
    return text if len(text) <= limit else text[:limit] + "..."
