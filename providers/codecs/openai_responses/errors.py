"""OpenAI Responses API: errors: encode_error / decode_error."""

from __future__ import annotations

import re

import orjson

from ..errors import GatewayError, error_type_for_status, is_retryable_status
from .wire import _error_type


# ------------------------------------------------------------------ errors
def encode_error(codec, error: GatewayError) -> tuple[int, dict]:
    return error.status, {"error": error_payload(error)}


def decode_error(codec, status: int, body: bytes) -> GatewayError:
    message = code = None
    try:
        data = orjson.loads(body) if body else None
    except (orjson.JSONDecodeError, TypeError):
        data = None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            message, code = err.get("message"), err.get("code")
            if not isinstance(message, str):
                message = data.get("detail") if isinstance(data.get("detail"), str) else None
        elif isinstance(err, str):
            message = err
    if not message:
        text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body or "")
        text = re.sub(r"<[^>]+>", " ", text)
        text = " ".join(text.split())[:300]
        message = f"upstream returned HTTP {status}" + (f": {text}" if text else "")
    kind = _error_type(code, message, error_type_for_status(status))
    if kind == "context_length" and status not in (400, 413):
        kind = error_type_for_status(status)
    retryable = is_retryable_status(status) and kind != "context_length"
    return GatewayError(
        kind,
        message,
        status if status >= 400 else None,
        retryable=retryable,
        retry_after=_retry_after(message) if retryable else None,
        code=code if isinstance(code, str) else None,
    )


_RETRY_RE = re.compile(r"try again in\s*(\d+(?:\.\d+)?)\s*(ms|s|seconds?)\b", re.I)


_OUT_TYPES = {
    "invalid_request": ("invalid_request_error", None),
    "unsupported": ("invalid_request_error", "unsupported_feature"),
    "context_length": ("invalid_request_error", "context_length_exceeded"),
    "authentication": ("authentication_error", "invalid_api_key"),
    "permission": ("permission_error", None),
    "not_found": ("not_found_error", "model_not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit": ("rate_limit_error", "rate_limit_exceeded"),
    "api_error": ("server_error", "server_error"),
    "bad_gateway": ("server_error", "bad_gateway"),
    "overloaded": ("server_error", "server_is_overloaded"),
    "timeout": ("server_error", "timeout"),
}


def _retry_after(message: str) -> float | None:
    m = _RETRY_RE.search(message or "")
    if not m:
        return None
    value = float(m.group(1))
    return value / 1000 if m.group(2).lower() == "ms" else value


def error_payload(error: GatewayError) -> dict:
    type_, code = _OUT_TYPES.get(error.type, ("server_error", None))
    return {
        "message": error.message,
        "type": type_,
        "param": getattr(error, "param", None),
        "code": error.code or code,
    }
