"""The response cache's in-process tier (response_cache.LocalTier) in front of a backend:
bytes bound, expiry, per-route purge, evictions and the config-version reset. The database
backend is stood in for by a dict that counts its lookups."""

from __future__ import annotations

import asyncio
import time

from gateway.proxy.response_cache import LocalTier


class CountingBackend:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[bytes, dict, float, str]] = {}
        self.fetches = 0

    async def fetch(self, key):
        self.fetches += 1
        row = self.rows.get(key)
        return row if row is not None and row[2] > time.time() else None

    async def put(self, key, route, body, meta, ttl, max_entries):
        self.rows[key] = (body, meta, time.time() + ttl, route)
        mine = [k for k, r in self.rows.items() if r[3] == route]
        stale = mine[:-max_entries] if len(mine) > max_entries else []
        for k in stale:
            del self.rows[k]
        return stale

    async def purge(self, route):
        gone = [k for k, r in self.rows.items() if r[3] == route]
        for k in gone:
            del self.rows[k]
        return len(gone)


def run(coro):
    return asyncio.run(coro)


def test_a_hit_after_the_first_lookup_asks_the_backend_no_more():
    inner = CountingBackend()
    tier = LocalTier(inner, 1 << 20, 10.0)
    inner.rows["k"] = (b"answer", {"cost": 1}, time.time() + 60, "r")
    assert run(tier.get("k")) == (b"answer", {"cost": 1})
    assert run(tier.get("k")) == (b"answer", {"cost": 1})
    assert inner.fetches == 1
    assert run(tier.get("missing")) is None and inner.fetches == 2  # misses are not remembered


def test_a_store_is_served_locally_and_evictions_of_this_process_drop_at_once():
    inner = CountingBackend()
    tier = LocalTier(inner, 1 << 20, 10.0)
    for key in ("one", "two", "three"):
        run(tier.put(key, "r", key.encode(), {}, 60, 2))
    assert run(tier.get("three")) == (b"three", {}) and inner.fetches == 0
    assert run(tier.get("one")) is None  # evicted by the backend's bound: gone here too


def test_bytes_bound_evicts_the_least_recently_used():
    tier = LocalTier(CountingBackend(), 8 * 1024, 10.0)
    for i in range(20):
        run(tier.put(f"k{i}", "r", b"x" * 500, {}, 60, 100))
    assert tier.size <= 8 * 1024
    assert "k19" in tier.entries and "k0" not in tier.entries
    run(tier.put("huge", "r", b"x" * 2000, {}, 60, 100))  # over an eighth of the bound: not kept
    assert "huge" not in tier.entries


def test_expiry_is_the_earlier_of_the_entry_ttl_and_the_local_ttl():
    inner = CountingBackend()
    tier = LocalTier(inner, 1 << 20, 0.2)
    run(tier.put("short", "r", b"s", {}, 60, 10))
    inner.rows.pop("short")  # evicted or purged by another process
    assert run(tier.get("short")) == (b"s", {})  # at most the local TTL stale
    time.sleep(0.25)
    assert run(tier.get("short")) is None
    tier = LocalTier(inner, 1 << 20, 10.0)
    run(tier.put("entry", "r", b"e", {}, 1, 10))
    time.sleep(1.1)
    assert run(tier.get("entry")) is None  # the entry's own TTL


def test_purge_per_route_and_the_config_version_reset():
    inner = CountingBackend()
    tier = LocalTier(inner, 1 << 20, 10.0)
    tier.sync("v1")
    run(tier.put("a", "ra", b"a", {}, 60, 10))
    run(tier.put("b", "rb", b"b", {}, 60, 10))
    assert run(tier.purge("ra")) == 1
    assert run(tier.get("a")) is None and run(tier.get("b")) == (b"b", {})
    inner.rows.clear()  # another process purged: it bumped the config version
    tier.sync("v1")
    assert run(tier.get("b")) == (b"b", {})
    tier.sync("v2")
    assert run(tier.get("b")) is None and tier.size == 0
