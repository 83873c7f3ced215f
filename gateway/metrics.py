"""Prometheus metrics at GET /metrics (text exposition format).

Fed from the usage recorder's listener hook, once per finished request, so the hot
path pays a few counter increments and nothing else. Per process: scrape every
gateway process (or use the multiprocess mode of prometheus-client behind one
endpoint). Set GATEWAY_METRICS_TOKEN to require `Authorization: Bearer <token>`;
without one the page is served to loopback only (GATEWAY_METRICS_PUBLIC=true opts out).

Label values are bounded: a model or route the config snapshot does not know (clients
can name any model) is counted as `other`, so the page and the registry stay the size
of the config, whatever clients send.
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
OTHER = "other"
_known: tuple[object, frozenset, frozenset, frozenset] | None = None  # snapshot, routes, providers, models


def _known_names(snapshot) -> tuple[frozenset, frozenset, frozenset]:
    """Routes, providers and models of the gateway's current snapshot (recomputed when it changes)."""
    global _known
    if _known is None or _known[0] is not snapshot:
        models = set()
        for p in snapshot.providers.values():
            models.update(p.models)
            if p.default_model:
                models.add(p.default_model)
        for r in snapshot.routes.values():
            models.update(t.model for t in r.targets)
        _known = (snapshot, frozenset(snapshot.routes), frozenset(snapshot.providers), frozenset(models))
    return _known[1], _known[2], _known[3]


def _fold(snapshot, route: str, provider: str, model: str) -> tuple[str, str, str]:
    routes, providers, models = _known_names(snapshot)
    if route and route not in routes:
        kind, _, name = route.partition(":")  # routing.router: provider:<name>, model:<id>
        if not ((kind == "provider" and name in providers) or (kind == "model" and name in models)):
            route = OTHER
    if provider and provider not in providers and provider != "junction":
        provider = OTHER
    if model and model not in models and provider != "junction":  # junction: local count_tokens estimates
        model = OTHER
    return route, provider, model


def _for(snapshot, endpoint: str, route: str, provider: str, model: str, status: int, stream: bool) -> tuple:
    route, provider, model = _fold(snapshot, route, provider, model)
    key = (endpoint, route, provider, model, status, stream)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (
            REQUESTS.labels(endpoint, route, provider, model, str(status)),
            tuple(TOKENS.labels(route, provider, model, kind) for kind, _ in TOKEN_FIELDS),
            COST.labels(route, provider, model), FALLBACKS.labels(route),
            LATENCY.labels(endpoint, "true" if stream else "false"), FIRST_BYTE.labels(provider))
    return children


def observe(record: dict, snapshot) -> None:
    """Count one finished request. Labels not in `snapshot` (the gateway's current config)
    fold into `other`, so client-chosen model names cannot grow the page without bound."""
    requests, tokens, cost, fallbacks, latency, first_byte = _for(
        snapshot, record["endpoint"], record["route"], record["provider"], record["model"], record["status"], record["stream"])
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
