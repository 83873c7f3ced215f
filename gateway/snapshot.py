"""The config snapshot: built from the database at start-up and whenever the config
version changes, then read lock-free by the hot path.

Cross-process invalidation: every config save rewrites a small version file in
the data directory (atomic rename, so its inode changes). Each request compares
`os.stat()` of it (about a microsecond) with the version its snapshot was built
from; on a change the first request rebuilds (single-flight) and the rest wait
for it, so a revoked key is refused on the very next request. Processes on other
hosts learn it through Redis when REDIS_URL is set (gateway.cluster polls the
shared version once a sync interval).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid

from django.conf import settings

from gateway.cluster import CLUSTER, publish_version
from routing.table import EMPTY, ConfigSnapshot, KeyInfo, ModelInfo, ProviderInfo

log = logging.getLogger("junction.snapshot")

_current: ConfigSnapshot = EMPTY
_lock: asyncio.Lock | None = None
DEFAULT_ROUTE = "default"


def bump_version() -> None:
    path = settings.GATEWAY_CONFIG_VERSION_FILE
    tmp = f"{path}.{os.getpid()}.tmp"
    token = uuid.uuid4().hex
    with open(tmp, "w") as fh:
        fh.write(token)
    os.replace(tmp, path)
    publish_version(token)


def current_version() -> object:
    try:
        st = os.stat(settings.GATEWAY_CONFIG_VERSION_FILE)
    except FileNotFoundError:
        return (None, CLUSTER.remote_version)
    return (st.st_ino, st.st_mtime_ns, CLUSTER.remote_version)


def build_snapshot(version: object = None) -> ConfigSnapshot:
    """Synchronous: reads every config table once. Never called on the event loop."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from gateway.models import VirtualKey
    from providers.models import Provider
    from gateway.limits import build_budgets
    from routing.selectors import provider_health, route_info, routes_for_snapshot

    try:
        providers: dict[str, ProviderInfo] = {}
        model_index: dict[str, list[str]] = {}
        for p in Provider.objects.filter(enabled=True).prefetch_related("models"):
            models = {}
            for m in p.models.all():
                if not m.enabled:
                    continue
                models[m.model_id] = ModelInfo(
                    m.model_id, m.context_window, m.deployment, float(m.input_price), float(m.output_price),
                    None if m.cache_read_price is None else float(m.cache_read_price),
                    None if m.cache_write_price is None else float(m.cache_write_price))
                model_index.setdefault(m.model_id, []).append(p.name)
            providers[p.name] = ProviderInfo(
                name=p.name, type=p.type, base_url=p.effective_base_url(), default_model=p.default_model,
                api_key=p.api_key or "", region=p.region, api_version=p.api_version,
                aws_access_key_id=p.aws_access_key_id, aws_secret_access_key=p.aws_secret_access_key or "",
                aws_profile=p.aws_profile,
                extra_headers=tuple((str(k), str(v)) for k, v in (p.extra_headers or {}).items()),
                connect_timeout=p.connect_timeout, first_token_timeout=p.first_token_timeout,
                total_timeout=p.total_timeout, wire_api=p.wire_api, proxy=p.proxy, ca_bundle=p.ca_bundle,
                models=models)

        routes = {r.name: route_info(r) for r in routes_for_snapshot()}
        health, health_latency = provider_health()

        keys: dict[str, KeyInfo] = {}
        for k in VirtualKey.objects.select_related("user").prefetch_related("allowed_routes"):
            allowed = frozenset(r.name for r in k.allowed_routes.all()) or None
            keys[k.key_hash] = KeyInfo(
                id=k.id, user_id=k.user_id, username=k.user.get_username(), prefix=k.prefix,
                expires_at=k.expires_at.timestamp() if k.expires_at else None,
                revoked=k.revoked_at is not None, allowed_routes=allowed,
                rpm_limit=k.rpm_limit, tpm_limit=k.tpm_limit)

        anonymous = None
        if settings.GATEWAY_ALLOW_ANONYMOUS:
            user, _ = get_user_model().objects.get_or_create(username="anonymous", defaults={"is_active": False})
            anonymous = KeyInfo(id=None, user_id=user.id, username=user.username, prefix="anonymous")

        default = routes.get(DEFAULT_ROUTE)
        return ConfigSnapshot(
            version=version, providers=providers, routes=routes, keys=keys,
            default_route=DEFAULT_ROUTE if default else None,
            fallback=default.targets[1:] if default else (),
            model_index={k: tuple(v) for k, v in model_index.items()}, anonymous=anonymous,
            health=health, health_latency_ms=health_latency, budgets=build_budgets())
    finally:
        connection.close()  # built in a worker thread: do not leave its connection open


async def get_snapshot() -> ConfigSnapshot:
    """The current snapshot, rebuilt first if the config version moved."""
    global _current, _lock
    version = current_version()
    snap = _current
    if snap is not EMPTY and snap.version == version:
        return snap
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:
        if _current is not EMPTY and _current.version == version:
            return _current
        started = time.perf_counter()
        _current = await asyncio.to_thread(build_snapshot, version)
        log.info("config snapshot rebuilt in %.1f ms", (time.perf_counter() - started) * 1000)
        return _current
