"""All outbound HTTP of the proxy hot path goes through one pooled client per gateway,
created here when the gateway starts (gateway.state) and handed to the adapters
(providers/upstream_client.py: the hand-written HTTP/1.1 client on httptools, keep-alive
pools per upstream origin, proxy and CA bundle).
httpx stays the client for everything off the hot path (health probes, model
discovery, tests); `httpx_options` gives it a provider's proxy and CA bundle.

Why the hand-written client and not aiohttp's (issue 17's rule: the library unless the
hand-written client stays >= 15% ahead in gateway CPU per request). Measured in one run of
the rig, one Daphne process per client, 8 rounds alternating A/B, B/A, aiohttp configured
for the hot path (tests/bench_clients/aiohttp_client.py; README "Performance"):
- gateway CPU per non-stream request, aiohttp / hand-written per round: 0.85-2.14, median 1.33;
- per 50-token stream: 1.04-1.64, median 1.19; per translated stream 0.88-1.70, median 1.28
  (an earlier run, before the read timer stopped re-arming per chunk and chunks were joined
  per read: streams 0.77-1.05, median 0.94; non-stream median 1.30);
- the client alone (python -m tests.bench_client): 0.06-0.08 ms of CPU per request against
  0.19-0.29 ms for aiohttp's client: aiohttp's per-request objects (ClientRequest,
  ClientResponse, payload, writer, multidicts, timers) and the garbage they make.
What the library had and this client lacked (proxies, CONNECT tunnels, proxy auth,
NO_PROXY, CA bundles, no POST re-sent once written) it now has, tested against a
forward proxy on loopback (tests/test_upstream_client.py, tests/e2e/test_upstream_proxy.py).
It still has no HTTP/2 and no SOCKS proxies. Re-measure with
`python -m tests.bench --clients builtin,aiohttp --rounds 8 --translated`.
"""

from __future__ import annotations

from .upstream_client import Client, tls_context


def create_client() -> Client:
    return Client()


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
