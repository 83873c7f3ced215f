"""All outbound HTTP of the proxy hot path goes through here: one pooled client per
process and event loop (keep-alive pools per upstream origin), see
providers/upstream_client.py for why it is not aiohttp's or httpx's client.
httpx stays the client for everything off the hot path (health probes, model
discovery, tests)."""

from __future__ import annotations

import asyncio

from .upstream_client import Client

_client: Client | None = None
_loop: asyncio.AbstractEventLoop | None = None


def client() -> Client:
    global _client, _loop
    loop = asyncio.get_running_loop()
    if _client is None or _loop is not loop:
        _client, _loop = Client(), loop
    return _client


async def close() -> None:
    global _client
    if _client is not None:
        _client.close()
        _client = None
