"""All outbound HTTP of the proxy hot path goes through one pooled client per
gateway (keep-alive pools per upstream origin), created here when the gateway
starts (gateway.state) and handed to the adapters; see providers/upstream_client.py
for why it is not aiohttp's or httpx's client. httpx stays the client for
everything off the hot path (health probes, model discovery, tests)."""

from __future__ import annotations

from .upstream_client import Client


def create_client() -> Client:
    return Client()
