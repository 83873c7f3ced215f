"""Hot-path fixes for the server underneath (Daphne on Twisted), applied at import
of gateway.asgi.

Twisted parses every request's Content-Type with the `email` package's header
machinery (twisted.web.http._parseContentType) just to see whether the body is a
form, a large share of the gateway's CPU per request (README, Performance). The
media type is all it needs, and splitting on ';' gives the same answer for every
well-formed header (and a harmless non-form answer for malformed ones).
"""

from __future__ import annotations


def _media_type(line: bytes) -> bytes:
    return line.split(b";", 1)[0].strip().lower()


def _no_access_log(self, request) -> None:
    """Twisted's own access log line (formatted for every request, then dropped by
    Daphne's logging config); Daphne writes its access log itself (--access-log)."""


try:
    from twisted.web import http as _twisted_http

    if hasattr(_twisted_http, "_parseContentType"):
        _twisted_http._parseContentType = _media_type
    _twisted_http.HTTPFactory.log = _no_access_log
except ImportError:  # not running under Twisted (e.g. another ASGI server)
    pass
