"""All outbound HTTP of the proxy hot path goes through here: one pooled client per
process and event loop (providers/upstream_client.py: aiohttp's client, keep-alive
pools per upstream origin, proxy and TLS context).
httpx stays the client for everything off the hot path (health probes, model
discovery, tests).

Why aiohttp's client and not the hand-written HTTP/1.1 client this replaced (issue 17,
measured in one run on the benchmark rig, A/B alternating, README "Performance"):
- Gateway CPU per non-stream request: the hand-written client was ahead, aiohttp/builtin
  per round 1.13-1.71 (median 1.62; an earlier run 1.48) on a machine loaded by other jobs.
- Gateway CPU per 50-token stream: no lead, 0.68-1.37 (median 1.04; translated streams
  median 0.92): aiohttp's C parser and stream reader cost no more per chunk. Coding agents
  stream nearly every request.
- The client alone (python -m tests.bench_client): aiohttp ~0.17-0.28 ms of CPU per request,
  hand-written ~0.05-0.07 ms; the ~0.2 ms is aiohttp's per-request objects (ClientRequest,
  ClientResponse, payload, writer, multidicts, timers) and the garbage collection they cause,
  not how the library was configured: the pre-issue-17 configuration measures the same.
The hand-written client is not >= 15% ahead on every kind of request, and the library brings
what it lacked: HTTPS_PROXY/NO_PROXY and per-provider proxies (CONNECT tunnels, proxy auth),
HTTP semantics maintained by others. Revisit if non-streaming traffic dominates.
"""

from __future__ import annotations

import asyncio

from .upstream_client import Client, Response, UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout, \
    tls_context

__all__ = ["Client", "Response", "UpstreamConnectError", "UpstreamProtocolError", "UpstreamTimeout", "client",
           "close", "httpx_options"]

_client: Client | None = None
_loop: asyncio.AbstractEventLoop | None = None


def client() -> Client:
    global _client, _loop
    loop = asyncio.get_running_loop()
    if _client is None or _loop is not loop:
        _client, _loop = Client(), loop
    return _client


def httpx_options(provider) -> dict:
    """The provider's `proxy` and `ca_bundle` as httpx client options, for the calls off the
    hot path (health probes, model discovery): empty proxy = httpx's own environment lookup
    (HTTPS_PROXY/HTTP_PROXY/NO_PROXY), `direct` = none, else that proxy URL. Raises OSError
    for an unreadable CA bundle."""
    options: dict = {}
    proxy = (getattr(provider, "proxy", "") or "").strip()
    if proxy == "direct":
        options["trust_env"] = False
    elif proxy:
        options["proxy"] = proxy
    ca_bundle = getattr(provider, "ca_bundle", "") or ""
    if ca_bundle:
        options["verify"] = tls_context(ca_bundle)
    return options


async def close() -> None:
    global _client
    if _client is not None:
        await _client.close()
        _client = None
