"""Hot-path fixes for the server underneath (Daphne on Twisted), applied at import
of gateway.asgi.

Twisted parses every request's Content-Type with the `email` package's header
machinery (twisted.web.http._parseContentType) just to see whether the body is a
form, a large share of the gateway's CPU per request (README, Performance). The
media type is all it needs, and Daphne never reads the form arguments Twisted would
parse from it (Django parses forms itself from the ASGI body). So no body is parsed as
a form at all: a malformed multipart body to /v1/* would otherwise die in Twisted with
a bare 400 instead of reaching the gateway's JSON content-type check (a 415 in the
client's format).
"""

from __future__ import annotations


def _media_type(line: bytes) -> bytes:
    return b""  # never a form type: Twisted skips its form parsing


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


# --------------------------------------------------------------------------- request limits
# Twisted reads a request's line, headers and whole body before Daphne hands it to the
# ASGI app, so these limits live here, at the connection: an oversized header or a
# Content-Length over GATEWAY_MAX_BODY_BYTES is answered at once in the client's error
# format (nothing of the body is buffered), and a request that does not complete within
# GATEWAY_BODY_TIMEOUT (slow-loris, stalled upload) is cut off with a 408. Twisted's own
# answers were an empty reply or a bare 400.

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 413: b"Content Too Large",
            431: b"Request Header Fields Too Large"}


def error_response(status: int, channel, error_type: str, message: str) -> bytes:
    """A complete HTTP/1.1 error response in the error format of the door the request
    names (recorded as a UsageRecord when it names one)."""
    import orjson

    from gateway.proxy.app import refuse_early
    from providers.codecs.errors import GatewayError

    path, headers = b"", []
    if not getattr(channel, "_HTTPChannel__first_line", 1) and channel.requests:
        path = getattr(channel, "_path", b"") or b""
        raw = channel.requests[-1].requestHeaders.getAllRawHeaders()
        headers = [(name.lower(), value) for name, values in raw for value in values]
    from gateway.asgi import gateway  # this process's Gateway (imported when first needed)

    payload, extra = refuse_early(gateway, path.split(b"?", 1)[0].decode("latin-1"), headers,
                                  GatewayError(error_type, message, status))
    body = orjson.dumps(payload)
    head = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in extra.items())
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s"
            b"connection: close\r\n\r\n" % (status, _REASONS.get(status, b"Error"), len(body), head)) + body


def _reactor():
    """Imported when first needed: importing it at module level would install Twisted's
    default reactor in processes that import gateway.asgi without Daphne."""
    from twisted.internet import reactor

    return reactor


def _install_limits() -> None:
    from django.conf import settings

    channel = _twisted_http.HTTPChannel
    header_limit = settings.GATEWAY_MAX_HEADER_BYTES
    channel.totalHeadersSize = header_limit
    channel.MAX_LENGTH = header_limit  # one line over LineReceiver's limit: it would just drop the connection
    original_line, original_headers = channel.lineReceived, channel.allHeadersReceived
    original_content = channel.allContentReceived

    def refuse(self, status: int, error_type: str, message: str) -> None:
        """Answer and close; whatever the client still sends is read and discarded, so
        it sees the answer instead of a reset."""
        self._junction_cancel()
        response = error_response(status, self, error_type, message)
        self.dataReceived = self.lineReceived = self.rawDataReceived = lambda *args: None
        self.transport.write(response)
        self.setTimeout(None)
        try:
            self.transport.loseWriteConnection()  # half-close: the answer and EOF reach the client
        except (AttributeError, NotImplementedError):
            self.transport.loseConnection()
        _reactor().callLater(5, self.transport.abortConnection)

    def respond_bad_request(self) -> None:
        if self._receivedHeaderSize > self.totalHeadersSize:
            refuse(self, 431, "request_too_large",
                   f"The request headers exceed the gateway's limit of {header_limit} bytes.")
        else:
            refuse(self, 400, "invalid_request", "Malformed HTTP request.")

    def line_too_long(self, line) -> None:
        refuse(self, 431, "request_too_large",
               f"A request header line exceeds the gateway's limit of {header_limit} bytes.")

    def timed_out(self) -> None:
        self._junction_timer = None
        refuse(self, 408, "timeout", f"Request timeout: it did not arrive completely within "
                                     f"{settings.GATEWAY_BODY_TIMEOUT:g} seconds.")

    def cancel(self) -> None:
        timer = getattr(self, "_junction_timer", None)
        if timer is not None:
            self._junction_timer = None
            if timer.active():
                timer.cancel()

    def line_received(self, line) -> None:
        if getattr(self, "_junction_timer", None) is None and self._HTTPChannel__first_line:
            self._junction_timer = _reactor().callLater(settings.GATEWAY_BODY_TIMEOUT, timed_out, self)
        original_line(self, line)

    def headers_received(self) -> None:
        limit = settings.GATEWAY_MAX_BODY_BYTES
        if self.length is not None and self.length > limit:
            refuse(self, 413, "request_too_large", f"The request body exceeds the gateway's limit of "
                                                   f"{limit} bytes.")
            return
        original_headers(self)

    def content_received(self) -> None:
        cancel(self)
        original_content(self)

    def connection_lost(self, reason, _original=channel.connectionLost) -> None:
        cancel(self)
        _original(self, reason)

    channel._respondToBadRequestAndDisconnect = respond_bad_request
    channel.lineLengthExceeded = line_too_long
    channel._junction_cancel = cancel
    channel.lineReceived = line_received
    channel.allHeadersReceived = headers_received
    channel.allContentReceived = content_received
    channel.connectionLost = connection_lost


try:
    _install_limits()
except ImportError:  # not running under Twisted
    pass


class PauseStats:
    """GATEWAY_LATENCY_DIAG=1 (gateway.daphne_main): what stops the event loop, measured in
    the serving process and logged at shutdown: garbage-collection pauses per generation
    and the usage writer's flushes (a thread that holds the GIL for much of its batch)."""

    def __init__(self) -> None:
        self.pauses: dict[str, list[float]] = {}
        self._gc_started = 0.0

    def _gc(self, phase: str, info: dict) -> None:
        import time

        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.pauses.setdefault(f"gc gen {info['generation']}", []).append(time.perf_counter()
                                                                               - self._gc_started)

    def install(self, gw) -> None:
        import gc
        import time

        gc.callbacks.append(self._gc)
        flush = gw.recorder.flush

        def timed_flush():
            started, cpu = time.perf_counter(), time.thread_time()
            written = flush()
            if written:  # wall time, and the writer thread's CPU time: about its time holding the GIL
                self.pauses.setdefault("usage flush", []).append(time.perf_counter() - started)
                self.pauses.setdefault("usage flush CPU", []).append(time.thread_time() - cpu)
                self.pauses.setdefault("usage rows per flush", []).append(written / 1000)
            return written

        gw.recorder.flush = timed_flush

    def report(self) -> str:
        lines = []
        for name, values in sorted(self.pauses.items()):
            values = sorted(values)
            lines.append(f"{name}: {len(values)} times, total {sum(values) * 1000:.0f} ms, "
                         f"p50 {values[len(values) // 2] * 1000:.2f} ms, max {values[-1] * 1000:.2f} ms")
        return "; ".join(lines) or "no pauses"
