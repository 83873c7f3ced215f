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
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    sys.exit(main())
