"""AWS Bedrock Runtime Converse API: errors: encode_error / decode_error."""

from __future__ import annotations

import orjson

from ..errors import GatewayError, error_type_for_status, is_retryable_status
from ..shared import mentions_context_overflow
from .wire import _CONTEXT_PHRASES, _EXCEPTIONS, _exception_error


def encode_error(codec, error: GatewayError) -> tuple[int, dict]:
    return error.status, {"message": error.message}


def decode_error(codec, status: int, body: bytes) -> GatewayError:
    message = None
    type_name = ""
    try:
        data = orjson.loads(body) if body else None
    except (ValueError, TypeError):
        data = None
    if isinstance(data, dict):
        message = data.get("message") or data.get("Message")
        type_name = str(data.get("__type") or data.get("code") or "").rsplit("#", 1)[-1]
        if not isinstance(message, str):
            message = None
    if not message:
        snippet = (
            body[:200].decode("utf-8", "replace").strip() if isinstance(body, (bytes, bytearray)) else ""
        )
        message = "Upstream Bedrock error (HTTP %d)%s" % (status, ": " + snippet if snippet else "")
    if type_name and type_name.split(":")[0].lower() in _EXCEPTIONS:
        err = _exception_error(type_name, message)
        err.status = status or err.status
        return err
    # The error type travels in the x-amzn-ErrorType header, which this contract does
    # not pass in: map by status (429 = ThrottlingException, 424 = ModelErrorException...).
    if status == 424:
        return GatewayError("api_error", message, 424, retryable=True)
    if status == 408:
        return GatewayError("timeout", message, 408, retryable=True)
    type_ = error_type_for_status(status)
    if type_ == "invalid_request" and mentions_context_overflow(message, _CONTEXT_PHRASES):
        type_ = "context_length"
    return GatewayError(type_, message, status, retryable=is_retryable_status(status))
