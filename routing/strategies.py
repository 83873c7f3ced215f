"""Candidate ordering per route strategy. Pure: no Django, no I/O.

Every strategy first splits the candidates into usable ones and the rest (circuit
open, or the provider's health check says "down"); the rest go last, in the same
strategy order, and are never removed: a likely failure beats no attempt at all.
Within each group the order is stable (ties keep the configured order).

    priority    as configured
    weighted    one weighted random draw picks the first; the rest by weight, highest first
    latency     lowest time-to-first-token EWMA (live traffic) first; unknown counts as the
                median of known ones. With no live data at all, the health probes' latency
                per provider orders them (unknown last), else the configured order.
    cost        lowest input + output price per 1M tokens first; unknown price last
    least_busy  fewest requests in flight first

Weights come from the route's targets (TargetInfo.weight), passed as a
{(provider, model): weight} map, so routing.router.Candidate needs no weight field.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable

from .stats import RuntimeStats, target_of

STRATEGIES = ("priority", "weighted", "latency", "cost", "least_busy")
DOWN = "down"


def usable(candidate, stats: RuntimeStats, health: dict[str, str], now: float | None = None) -> bool:
    return health.get(candidate.provider.name) != DOWN and stats.available(target_of(candidate), now)


def healthy_first(candidates: list, stats: RuntimeStats, health: dict[str, str],
                  now: float | None = None) -> tuple[list, list]:
    good, bad = [], []
    for c in candidates:
        (good if usable(c, stats, health, now) else bad).append(c)
    return good, bad


def order_candidates(strategy: str, candidates: list, stats: RuntimeStats, *, rng: random.Random,
                     health: dict[str, str], weights: dict[tuple[str, str], int] | None = None,
                     probe_latency: dict[str, float] | None = None, now: float | None = None) -> list:
    """`weights`: {(provider, model): weight} from the route's targets; `probe_latency`:
    {provider: ms} from the health checks (ConfigSnapshot.health_latency_ms)."""
    good, bad = healthy_first(candidates, stats, health, now)
    order = _ORDERS.get(strategy, _priority)
    context = (weights or {}, probe_latency or {})
    return order(good, stats, rng, context) + order(bad, stats, None, context)


def _priority(candidates, stats, rng, context):
    return list(candidates)


def _weight(weights: dict, candidate) -> int:
    return max(0, weights.get(target_of(candidate), 1))


def _weighted(candidates, stats, rng, context):
    weights = context[0]
    if len(candidates) < 2:
        return list(candidates)
    ws = [_weight(weights, c) for c in candidates]
    by_weight = [candidates[i] for i in sorted(range(len(candidates)), key=lambda i: -ws[i])]  # stable
    total = sum(ws)
    if rng is None or total <= 0:
        return by_weight if total > 0 else list(candidates)  # every weight 0: the configured order
    point = rng.random() * total
    chosen = candidates[-1]
    for w, c in zip(ws, candidates):
        point -= w
        if point < 0:
            chosen = c
            break
    return [chosen] + [c for c in by_weight if c is not chosen]


def _latency(candidates, stats, rng, context):
    known = [t for t in (stats.ttft(target_of(c)) for c in candidates) if t is not None]
    if not known:
        probes = context[1]
        if not any(c.provider.name in probes for c in candidates):
            return list(candidates)
        return sorted(candidates, key=lambda c: probes.get(c.provider.name, float("inf")))
    default = statistics.median(known)

    def key(c):
        t = stats.ttft(target_of(c))
        return default if t is None else t

    return sorted(candidates, key=key)


def price(candidate) -> float | None:
    info = candidate.provider.models.get(candidate.model)
    return None if info is None else info.input_price + info.output_price


def _cost(candidates, stats, rng, context):
    def key(c):
        p = price(c)
        return (1, 0.0) if p is None else (0, p)

    return sorted(candidates, key=key)


def _least_busy(candidates, stats, rng, context):
    return sorted(candidates, key=lambda c: stats.in_flight(target_of(c)))


_ORDERS: dict[str, Callable] = {"priority": _priority, "weighted": _weighted, "latency": _latency,
                                 "cost": _cost, "least_busy": _least_busy}
