"""A gateway whose upstream client is aiohttp's (tests/bench_clients/aiohttp_client.py),
for the A/B in tests/bench.py: `python -m tests.bench_clients.aiohttp_gateway <daphne args>`.
Only the class providers/http.py builds is swapped; everything else is the gateway."""

import sys

from gateway import daphne_main


def main() -> None:
    import providers.http

    from .aiohttp_client import Client

    providers.http.Client = Client
    daphne_main.main()


if __name__ == "__main__":
    sys.exit(main())
