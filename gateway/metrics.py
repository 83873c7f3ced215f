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


def observe(record: dict) -> None:
    route, provider, model = record["route"], record["provider"], record["model"]
    REQUESTS.labels(record["endpoint"], route, provider, model, str(record["status"])).inc()
    for kind, field in (("input", "prompt_tokens"), ("output", "completion_tokens"), ("cached", "cached_tokens"),
                        ("reasoning", "reasoning_tokens")):
        if record[field]:
            TOKENS.labels(route, provider, model, kind).inc(record[field])
    if record["cost_usd"]:
        COST.labels(route, provider, model).inc(float(record["cost_usd"]))
    if record["attempts"] > 1:
        FALLBACKS.labels(route).inc()
    LATENCY.labels(record["endpoint"], "true" if record["stream"] else "false").observe(record["latency_ms"] / 1000)
    if record["ttft_ms"] is not None and provider:
        FIRST_BYTE.labels(provider).observe(record["ttft_ms"] / 1000)


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
