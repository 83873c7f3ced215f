"""All outbound HTTP of the proxy hot path goes through here: one shared, pooled
aiohttp ClientSession per process (keep-alive per upstream host).

Why not httpx here: measured on this machine, httpx's own request/response model
costs as much as the rest of the gateway together (design.md §2: ~370-700 req/s
with httpx, ~1,100 with aiohttp under the same server). httpx stays the client
for everything off the hot path (health probes, model discovery, tests).
"""

from __future__ import annotations

import asyncio

import aiohttp

_session: aiohttp.ClientSession | None = None
_loop: asyncio.AbstractEventLoop | None = None


def session() -> aiohttp.ClientSession:
    global _session, _loop
    loop = asyncio.get_running_loop()
    if _session is None or _loop is not loop or _session.closed:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60, ttl_dns_cache=300,
                                         enable_cleanup_closed=True)
        _session = aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False,
                                         skip_auto_headers=("User-Agent",), cookie_jar=aiohttp.DummyCookieJar())
        _loop = loop
    return _session


async def close() -> None:
    global _session
    if _session is not None:
        await _session.close()
        _session = None
