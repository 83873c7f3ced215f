"""Start Daphne on uvloop: `python -m gateway.daphne_main <daphne args>`.

Daphne builds its Twisted reactor on `asyncio.new_event_loop()` when its server
module is imported, so the uvloop policy must be in place before that import.
uvloop cuts the event loop's own cost per request (README, Performance); without
uvloop installed this is plain Daphne.

Daphne does not run the ASGI lifespan protocol, so the gateway (gateway.asgi) is
started here once the reactor runs and stopped before it shuts down, on the asyncio
loop the reactor and the application share; shutdown waits until the usage still
buffered in memory is written.

SIGTERM drains instead of Twisted's immediate stop (which cancels every request in
flight): stop listening, close idle keep-alive connections, let the requests and
streams in flight finish for up to GATEWAY_DRAIN_SECONDS, then cancel the rest (the
proxy ends them in the client's format, gateway.proxy.app) and stop the reactor. A
second SIGTERM (or SIGINT) ends the grace period at once.
"""

import asyncio
import gc
import logging
import os
import signal
import sys

log = logging.getLogger("junction.gateway")


def _start(cli) -> None:
    """Twisted fires start-up before its asyncio loop runs: schedule gateway.start() on it."""
    from daphne.server import twisted_loop
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    from gateway.asgi import gateway

    def failed(failure):
        log.error("the gateway did not start: %s", failure.getTraceback())
        reactor.stop()

    def started(_):
        _tune_gc()
        if os.environ.get("GATEWAY_LATENCY_DIAG") == "1":
            from gateway.server_tuning import PauseStats

            stats = PauseStats()
            stats.install(gateway)
            reactor.addSystemEventTrigger("after", "shutdown",
                                          lambda: log.warning("pauses: %s", stats.report()))
        drain = Drain(cli.server, gateway)
        for sig in (signal.SIGTERM, signal.SIGINT):
            twisted_loop.add_signal_handler(sig, drain.signalled)

    Deferred.fromFuture(twisted_loop.create_task(gateway.start())).addCallbacks(started, failed)


def _tune_gc() -> None:
    """Everything allocated at start-up (Django, the codecs, the config snapshot) is
    moved out of the collector's sight, and the young generation collected less often:
    fewer and shorter collection pauses, the main source of the p99 (README, Performance).
    GATEWAY_GC_TUNING=0 keeps Python's defaults (for comparison)."""
    if os.environ.get("GATEWAY_GC_TUNING", "1") in ("0", "false", "no"):
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    # The usage writer thread holds the GIL for tens of ms of CPU per batch; a shorter
    # switch interval hands it back to the event loop sooner (1 ms instead of 5 ms).
    sys.setswitchinterval(float(os.environ.get("GATEWAY_SWITCH_INTERVAL_MS", "1")) / 1000)


class Drain:
    def __init__(self, server, gw) -> None:
        from django.conf import settings

        self.server = server  # daphne.server.Server: its connections and their application tasks
        self.gw = gw
        self.grace = settings.GATEWAY_DRAIN_SECONDS
        self.signals = 0
        self.task: asyncio.Task | None = None

    def signalled(self) -> None:
        self.signals += 1
        if self.signals == 1:
            self.task = asyncio.ensure_future(self.run())
        else:
            log.warning("second stop signal: ending the requests still in flight now")
            self.gw.expired = True

    def busy(self) -> list:
        return [details["application_instance"] for details in self.server.connections.values()
                if details.get("application_instance") is not None
                and not details["application_instance"].done()]

    def close_idle(self) -> None:
        """Keep-alive connections between requests would bring new requests: close them."""
        for protocol, details in list(self.server.connections.items()):
            instance = details.get("application_instance")
            if (instance is None or instance.done()) and not details.get("disconnected"):
                if getattr(protocol, "transport", None) is not None:
                    protocol.transport.loseConnection()

    async def run(self) -> None:
        from twisted.internet import reactor
        from twisted.internet.tcp import Port

        gw = self.gw
        gw.draining = True
        for reader in list(reactor.getReaders()):
            if isinstance(reader, Port):
                reader.stopListening()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        log.info("draining: %d requests in flight, up to %.0f s", len(self.busy()), self.grace)
        try:
            while True:
                self.close_idle()
                busy = self.busy()
                if not busy:
                    break
                if gw.expired or loop.time() >= deadline:
                    gw.expired = True
                    log.warning("drain deadline: ending %d requests still in flight", len(busy))
                    for task in busy:
                        task.cancel()
                    await asyncio.wait(busy, timeout=5)
                    break
                await asyncio.sleep(0.05)
        except Exception:
            log.exception("drain failed; stopping now")
        log.info("drained")
        reactor.stop()  # the gateway's stop() (a before-shutdown trigger) then flushes usage


def _stop():
    """Twisted waits for the returned Deferred before it shuts down."""
    from daphne.server import twisted_loop
    from twisted.internet.defer import Deferred

    from gateway.asgi import gateway

    return Deferred.fromFuture(twisted_loop.create_task(gateway.stop()))


def main() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    _private_redacted_access_log()
    from daphne.cli import CommandLineInterface  # installs Twisted's asyncio reactor first
    from twisted.internet import reactor

    cli = CommandLineInterface()
    reactor.callWhenRunning(_start, cli)
    reactor.addSystemEventTrigger("before", "shutdown", _stop)
    cli.run(sys.argv[1:])


def _private_redacted_access_log() -> None:
    """Daphne's access log (--access-log FILE) names every path, `/k/<key>/…` included:
    each line is redacted (gateway/log_redaction.py) and the file is created 0600
    (Daphne would open it world-readable)."""
    from daphne import access, cli

    from gateway.log_redaction import redact

    write_entry = access.AccessLogGenerator.write_entry

    def redacted(self, host, date, request, *args, **kwargs):
        return write_entry(self, host, date, redact(request), *args, **kwargs)

    access.AccessLogGenerator.write_entry = redacted
    cli.open = _open_access_log  # the only open() in daphne.cli is the access log's


def _open_access_log(path, mode="r", *args, **kwargs):
    from gateway.log_redaction import open_private

    return open_private(path, mode) if "a" in mode else open(path, mode, *args, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
