"""Prometheus metrics at GET /metrics (text exposition format).

Fed from the usage recorder's listener hook, once per finished request, so the hot
path pays a few counter increments and nothing else. Per process: scrape every
gateway process (or use the multiprocess mode of prometheus-client behind one
endpoint). Set GATEWAY_METRICS_TOKEN to require `Authorization: Bearer <token>`.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)
LABELS = ("endpoint", "route", "provider", "model", "status")

REQUESTS = Counter("junction_requests", "Proxied requests", LABELS, registry=REGISTRY)
TOKENS = Counter("junction_tokens", "Tokens by kind", ("route", "provider", "model", "kind"), registry=REGISTRY)
COST = Counter("junction_cost_usd", "Spend in USD", ("route", "provider", "model"), registry=REGISTRY)
FALLBACKS = Counter("junction_fallbacks", "Requests served after more than one attempt", ("route",),
                    registry=REGISTRY)
LATENCY = Histogram("junction_request_seconds", "Request duration", ("endpoint", "stream"), registry=REGISTRY,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
FIRST_BYTE = Histogram("junction_time_to_first_byte_seconds", "Time to the upstream's first byte",
                       ("provider",), registry=REGISTRY,
                       buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))


TOKEN_FIELDS = (("input", "prompt_tokens"), ("output", "completion_tokens"), ("cached", "cached_tokens"),
                ("reasoning", "reasoning_tokens"))
_children: dict[tuple, tuple] = {}  # label values → metric children (.labels() costs more than .inc())


def _for(endpoint: str, route: str, provider: str, model: str, status: int, stream: bool) -> tuple:
    key = (endpoint, route, provider, model, status, stream)
    children = _children.get(key)
    if children is None:
        if len(_children) > 50_000:  # clients can name arbitrary models: stay bounded
            _children.clear()
        children = _children[key] = (
            REQUESTS.labels(endpoint, route, provider, model, str(status)),
            tuple(TOKENS.labels(route, provider, model, kind) for kind, _ in TOKEN_FIELDS),
            COST.labels(route, provider, model), FALLBACKS.labels(route),
            LATENCY.labels(endpoint, "true" if stream else "false"), FIRST_BYTE.labels(provider))
    return children


def observe(record: dict) -> None:
    requests, tokens, cost, fallbacks, latency, first_byte = _for(
        record["endpoint"], record["route"], record["provider"], record["model"], record["status"], record["stream"])
    requests.inc()
    for counter, (_, field) in zip(tokens, TOKEN_FIELDS):
        if record[field]:
            counter.inc(record[field])
    if record["cost_usd"]:
        cost.inc(float(record["cost_usd"]))
    if record["attempts"] > 1:
        fallbacks.inc()
    latency.observe(record["latency_ms"] / 1000)
    if record["ttft_ms"] is not None and record["provider"]:
        first_byte.observe(record["ttft_ms"] / 1000)


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
