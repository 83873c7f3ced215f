"""Anthropic Messages API: errors: encode_error / decode_error."""

from __future__ import annotations

import re

import orjson

from ..errors import GatewayError, error_type_for_status, is_retryable_status
from ..shared import mentions_context_overflow
from .wire import _CONTEXT_PHRASES, _ERROR_IN, _ERROR_OUT, _client_message


def encode_error(codec, error: GatewayError) -> tuple[int, dict]:
    status, kind = _ERROR_OUT.get(error.type, (None, None))
    if kind is None:  # a type this codec does not know: go by the status
        status = error.status or 500
        kind = _anthropic_type_for_status(status)
    return status, {
        "type": "error",
        "error": {"type": kind, "message": _client_message(error.type, error.message)},
    }


def decode_error(codec, status: int, body: bytes) -> GatewayError:
    kind = message = None
    try:
        obj = orjson.loads(body) if body else None
    except (orjson.JSONDecodeError, TypeError):
        obj = None
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict):
            message = err.get("message") if isinstance(err.get("message"), str) else None
            kind = _ERROR_IN.get(err.get("type"))
        elif isinstance(err, str):  # some proxies: {"error": "..."}
            message = err
        elif isinstance(obj.get("message"), str):
            message = obj["message"]
    if message is None:
        message = f"upstream returned HTTP {status}" + (
            f": {_excerpt(body)}" if body else " with an empty body"
        )
    if kind is None:
        kind = "bad_gateway" if status == 502 else error_type_for_status(status)
    if kind == "invalid_request" and mentions_context_overflow(message, _CONTEXT_PHRASES):
        kind = "context_length"
    out_status = status if 400 <= status < 600 else None
    return GatewayError(
        kind,
        message,
        out_status,
        retryable=is_retryable_status(status) or kind in ("overloaded", "rate_limit", "timeout"),
    )


_TAGS = re.compile(rb"<[^>]*>")


_SPACES = re.compile(rb"\s+")


def _anthropic_type_for_status(status: int) -> str:
    if status == 529 or status == 503:
        return "overloaded_error"
    if status >= 500:
        return "api_error"
    return {
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
    }.get(status, "invalid_request_error")


def _excerpt(body: bytes, limit: int = 200) -> str:
    text = _SPACES.sub(b" ", _TAGS.sub(b" ", body[:4096])).strip()
    return text[:limit].decode("utf-8", "replace")
