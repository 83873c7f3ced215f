"""Errors shared by codecs, adapters and front doors.

Canonical error types (each front door maps them to its own wire names):
    invalid_request (400), authentication (401), permission (403), not_found (404),
    request_too_large (413), rate_limit (429), api_error (500), bad_gateway (502),
    overloaded (529/503), timeout (504), unsupported (400)
"""

from __future__ import annotations

ERROR_TYPES = {
    "invalid_request": 400,
    "unsupported": 400,
    "context_length": 400,
    "authentication": 401,
    "permission": 403,
    "not_found": 404,
    "request_too_large": 413,
    "rate_limit": 429,
    "api_error": 500,
    "bad_gateway": 502,
    "overloaded": 503,
    "timeout": 504,
}


class GatewayError(Exception):
    """An error with a canonical type, an HTTP status and a client-safe message.

    `retryable` says whether another candidate (or a retry) may succeed where this
    one failed: transport failures, 429, 5xx, timeouts.
    """

    def __init__(self, type: str, message: str, status: int | None = None, *,
                 retryable: bool = False, retry_after: float | None = None, code: str | None = None):
        super().__init__(message)
        self.type = type
        self.message = message
        self.status = status or ERROR_TYPES.get(type, 500)
        self.retryable = retryable
        self.retry_after = retry_after
        self.code = code


class UnsupportedFeature(GatewayError):
    """The request uses something the upstream format cannot express (e.g. n>1 to Anthropic).
    A clear 400 beats silently dropping it."""

    def __init__(self, message: str):
        super().__init__("unsupported", message, 400)


class InvalidRequest(GatewayError):
    def __init__(self, message: str, code: str | None = None):
        super().__init__("invalid_request", message, 400, code=code)


def error_type_for_status(status: int) -> str:
    if status == 400:
        return "invalid_request"
    if status == 401:
        return "authentication"
    if status == 403:
        return "permission"
    if status == 404:
        return "not_found"
    if status == 413:
        return "request_too_large"
    if status == 429:
        return "rate_limit"
    if status in (503, 529):
        return "overloaded"
    if status == 504:
        return "timeout"
    return "api_error"


def is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500 or status == 408
