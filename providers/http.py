"""All outbound HTTP of the proxy hot path goes through here: one pooled client per
process and event loop (keep-alive pools per upstream origin).
httpx stays the client for everything off the hot path (health probes, model
discovery, tests)."""

from __future__ import annotations

import asyncio
import os

if os.environ.get("JUNCTION_UPSTREAM_CLIENT") == "builtin":  # A/B benchmark only (tests/bench.py)
    from .upstream_client_builtin import Client, Response, UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout
else:
    from .upstream_client import Client, Response, UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout

__all__ = ["Client", "Response", "UpstreamConnectError", "UpstreamProtocolError", "UpstreamTimeout", "client",
           "close"]

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
        result = _client.close()
        if asyncio.iscoroutine(result):
            await result
        _client = None
