"""Ollama native API: errors: encode_error / decode_error."""

from __future__ import annotations

import orjson

from ..errors import GatewayError, error_type_for_status, is_retryable_status


def encode_error(codec, error: GatewayError) -> tuple[int, dict]:
    return error.status, {"error": error.message}


def decode_error(codec, status: int, body: bytes) -> GatewayError:
    message = None
    try:
        data = orjson.loads(body) if body else None
    except (ValueError, TypeError):
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, str):
            message = err
        elif isinstance(err, dict):  # OpenAI-compatible shape from Ollama's /v1 endpoints
            message = err.get("message")
        elif isinstance(data.get("message"), str):
            message = data["message"]
    if not message:
        snippet = (
            body[:200].decode("utf-8", "replace").strip() if isinstance(body, (bytes, bytearray)) else ""
        )
        message = "Upstream Ollama error (HTTP %d)%s" % (status, ": " + snippet if snippet else "")
    type_ = error_type_for_status(status)
    if status == 404 or (status == 400 and "not found" in message.lower() and "model" in message.lower()):
        type_ = "not_found"
    return GatewayError(type_, message, status, retryable=is_retryable_status(status))
