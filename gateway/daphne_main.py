"""Start Daphne on uvloop: `python -m gateway.daphne_main <daphne args>`.

Daphne builds its Twisted reactor on `asyncio.new_event_loop()` when its server
module is imported, so the uvloop policy must be in place before that import.
uvloop roughly halves the event loop's own cost per request; without uvloop
installed this is plain Daphne.
"""

import asyncio
import sys


def main() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    _private_redacted_access_log()
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()


def _private_redacted_access_log() -> None:
    """Daphne's access log (--access-log FILE) names every path, `/k/<key>/…` included:
    each line is redacted (gateway/log_redaction.py) and the file is created 0600
    (Daphne would open it world-readable)."""
    from daphne import access, cli

    from gateway.log_redaction import open_private, redact

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
