"""Start Daphne on uvloop: `python -m gateway.daphne_main <daphne args>`.

Daphne builds its Twisted reactor on `asyncio.new_event_loop()` when its server
module is imported, so the uvloop policy must be in place before that import.
uvloop cuts the event loop's own cost per request (README, Performance); without
uvloop installed this is plain Daphne.

Daphne does not run the ASGI lifespan protocol, so the gateway (gateway.asgi) is
started here once the reactor runs and stopped before it shuts down (SIGTERM,
Ctrl-C), on the asyncio loop the reactor and the application share; shutdown waits
until the usage still buffered in memory is written.
"""

import asyncio
import logging
import sys

log = logging.getLogger("junction.gateway")


def _start() -> None:
    """Twisted fires start-up before its asyncio loop runs: schedule gateway.start() on it."""
    from daphne.server import twisted_loop
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    from gateway.asgi import gateway

    def failed(failure):
        log.error("the gateway did not start: %s", failure.getTraceback())
        reactor.stop()

    Deferred.fromFuture(twisted_loop.create_task(gateway.start())).addErrback(failed)


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

    reactor.callWhenRunning(_start)
    reactor.addSystemEventTrigger("before", "shutdown", _stop)
    CommandLineInterface.entrypoint()


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
