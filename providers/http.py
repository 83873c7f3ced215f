"""All outbound HTTP goes through here: one shared, pooled httpx.AsyncClient.

The client uses the `httpx-aiohttp` transport: httpx's API with aiohttp's
connection handling, several times faster than httpcore under concurrency
(design.md §2). It is created lazily inside the running event loop.
"""

from __future__ import annotations

import asyncio

import httpx
from httpx_aiohttp import AiohttpTransport

_client: httpx.AsyncClient | None = None
_loop: asyncio.AbstractEventLoop | None = None


def client() -> httpx.AsyncClient:
    global _client, _loop
    loop = asyncio.get_running_loop()
    if _client is None or _loop is not loop:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=60)
        _client = httpx.AsyncClient(transport=AiohttpTransport(limits=limits, trust_env=False), limits=limits,
                                    trust_env=False, follow_redirects=False)
        _loop = loop
    return _client


async def close() -> None:
    global _client
    if _client is not None:
        await _client.aclose()
        _client = None
