"""Candidate ordering per strategy; unusable targets always last, never removed."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from routing.stats import RuntimeStats
from routing.strategies import order_candidates

from .build import Clock, candidates, names, provider, snapshot

SNAP = snapshot([provider("local", "ollama", {"qwen": (32000, 0.0, 0.0)}),
                 provider("cheap", models={"mini": (128000, 0.15, 0.6)}),
                 provider("strong", "anthropic", {"sonnet": (200000, 3.0, 15.0)}),
                 provider("mystery", models={})], [])
ALL = [("strong", "sonnet"), ("cheap", "mini"), ("local", "qwen"), ("mystery", "x")]


@pytest.fixture
def stats():
    return RuntimeStats(clock=Clock())


def order(strategy, stats, pairs=ALL, *, seed=1, health=None, weights=None):
    return names(order_candidates(strategy, candidates(SNAP, pairs), stats, rng=random.Random(seed),
                                  health=health or {}, weights=weights))


def open_circuit(stats, target):
    for _ in range(5):
        stats.end(stats.begin(target), ok=False, status=503)


class TestOrdering:
    def test_priority_keeps_the_configured_order(self, stats):
        assert order("priority", stats) == ["strong/sonnet", "cheap/mini", "local/qwen", "mystery/x"]

    def test_an_unknown_strategy_is_priority(self, stats):
        assert order("nonsense", stats) == order("priority", stats)

    def test_weighted_splits_first_choices_by_weight_within_tolerance(self, stats):
        weights = {("strong", "sonnet"): 1, ("cheap", "mini"): 3, ("local", "qwen"): 6}
        rng = random.Random(42)
        pairs = ALL[:3]
        firsts = Counter(
            order_candidates("weighted", candidates(SNAP, pairs), stats, rng=rng, health={}, weights=weights)[0]
            .provider.name for _ in range(10_000))
        assert firsts["strong"] / 10_000 == pytest.approx(0.1, abs=0.015)
        assert firsts["cheap"] / 10_000 == pytest.approx(0.3, abs=0.015)
        assert firsts["local"] / 10_000 == pytest.approx(0.6, abs=0.015)

    def test_weighted_orders_the_rest_by_weight(self, stats):
        weights = {("strong", "sonnet"): 1, ("cheap", "mini"): 3, ("local", "qwen"): 6}
        for seed in range(20):
            result = order("weighted", stats, ALL[:3], seed=seed, weights=weights)
            rest = [n for n in ["local/qwen", "cheap/mini", "strong/sonnet"] if n != result[0]]
            assert result[1:] == rest

    def test_weight_zero_is_never_drawn_first(self, stats):
        weights = {("strong", "sonnet"): 0, ("cheap", "mini"): 1}
        assert all(order("weighted", stats, ALL[:2], seed=s, weights=weights)[0] == "cheap/mini"
                   for s in range(200))

    def test_latency_puts_the_fastest_first_and_unknown_at_the_median(self, stats):
        for target, ttft in ((("strong", "sonnet"), 2.0), (("cheap", "mini"), 0.5), (("local", "qwen"), 1.0)):
            stats.end(stats.begin(target), ok=True, ttft=ttft)
        # mystery/x is unknown: it counts as the median (1.0), after local/qwen (stable).
        assert order("latency", stats) == ["cheap/mini", "local/qwen", "mystery/x", "strong/sonnet"]

    def test_latency_without_data_keeps_the_configured_order(self, stats):
        assert order("latency", stats) == order("priority", stats)

    def test_latency_without_live_data_uses_the_health_probes(self, stats):
        probes = {"strong": 300.0, "local": 5.0, "cheap": 80.0}
        result = names(order_candidates("latency", candidates(SNAP, ALL), stats, rng=random.Random(0), health={},
                                        probe_latency=probes))
        assert result == ["local/qwen", "cheap/mini", "strong/sonnet", "mystery/x"]  # no probe: last
        # Live traffic wins over probes as soon as there is some.
        stats.end(stats.begin(("strong", "sonnet")), ok=True, ttft=0.2)
        result = names(order_candidates("latency", candidates(SNAP, ALL), stats, rng=random.Random(0), health={},
                                        probe_latency=probes))
        assert result == ["strong/sonnet", "cheap/mini", "local/qwen", "mystery/x"]  # unknown = median = 0.2

    def test_cost_puts_the_cheapest_first_and_unknown_prices_last(self, stats):
        assert order("cost", stats) == ["local/qwen", "cheap/mini", "strong/sonnet", "mystery/x"]

    def test_least_busy_puts_the_fewest_in_flight_first(self, stats):
        for target, n in ((("strong", "sonnet"), 3), (("cheap", "mini"), 1), (("local", "qwen"), 2)):
            for _ in range(n):
                stats.begin(target)
        assert order("least_busy", stats) == ["mystery/x", "cheap/mini", "local/qwen", "strong/sonnet"]


class TestUnusableTargetsGoLast:
    @pytest.mark.parametrize("strategy", ["priority", "weighted", "latency", "cost", "least_busy"])
    def test_an_open_circuit_goes_last_in_every_strategy(self, stats, strategy):
        open_circuit(stats, ("local", "qwen"))
        result = order(strategy, stats)
        assert result[-1] == "local/qwen" and len(result) == 4

    @pytest.mark.parametrize("strategy", ["priority", "weighted", "latency", "cost", "least_busy"])
    def test_a_provider_down_goes_last_in_every_strategy(self, stats, strategy):
        result = order(strategy, stats, health={"local": "down", "cheap": "degraded"})
        assert result[-1] == "local/qwen" and len(result) == 4

    def test_unusable_targets_keep_the_strategy_order_among_themselves(self, stats):
        open_circuit(stats, ("strong", "sonnet"))
        result = order("cost", stats, health={"local": "down"})
        assert result == ["cheap/mini", "mystery/x", "local/qwen", "strong/sonnet"]

    def test_everything_unusable_still_leaves_every_candidate(self, stats):
        result = order("priority", stats, health={p: "down" for p in ("strong", "cheap", "local", "mystery")})
        assert result == order("priority", RuntimeStats())
