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
