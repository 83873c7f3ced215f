"""Reads for the config snapshot (gateway.snapshot.build_snapshot): routes with their
rules and flags, and the latest health status per provider."""

from __future__ import annotations

import dataclasses

from .models import ProviderHealth, Route
from .table import ConfigSnapshot, RouteInfo, TargetInfo


def routes_for_snapshot():
    return Route.objects.filter(enabled=True).prefetch_related("targets__provider", "rules__target_route",
                                                               "rules__target_provider")


def route_info(route: Route) -> RouteInfo:
    """`route` from routes_for_snapshot() (prefetched: no query per route)."""
    targets = tuple(TargetInfo(t.provider.name, t.model or t.provider.default_model, t.weight)
                    for t in route.targets.all() if t.provider.enabled)
    rules = tuple(info for info in (rule.to_info() for rule in route.rules.all() if rule.enabled)
                  if info is not None)
    return RouteInfo(route.name, route.strategy, targets, rules=rules, session_affinity=route.session_affinity,
                     context_window_fallback=route.context_window_fallback, hosted_tools=route.hosted_tools,
                     **{f: getattr(route, f) for f in CACHE_FIELDS})


# Route fields copied as they are onto RouteInfo (and config files): the caching switches.
CACHE_FIELDS = ("prompt_cache", "prompt_cache_passthrough", "prompt_cache_ttl", "response_cache",
                "response_cache_any_temperature", "response_cache_ttl", "response_cache_max_entries")


def provider_health() -> tuple[dict[str, str], dict[str, float]]:
    """({provider: status}, {provider: probe latency ms}) for ConfigSnapshot.health and
    .health_latency_ms."""
    status, latency = {}, {}
    for h in ProviderHealth.objects.filter(provider__enabled=True).select_related("provider"):
        status[h.provider.name] = h.status
        if h.latency_ms is not None:
            latency[h.provider.name] = h.latency_ms
    return status, latency


def health_by_provider() -> dict[str, str]:
    return provider_health()[0]


def with_routing(snapshot: ConfigSnapshot) -> ConfigSnapshot:
    """The snapshot with routes (rules, flags) and health read afresh: for tools (the route
    tester) that must not depend on what build_snapshot fills in."""
    routes = {r.name: route_info(r) for r in routes_for_snapshot()}
    status, latency = provider_health()
    return dataclasses.replace(snapshot, routes=routes, health=status, health_latency_ms=latency)
