"""The config snapshot: built from the database at start-up and whenever the config
version changes, then read lock-free by the hot path.

Cross-process invalidation (providers.config_version): every config save rewrites
a small version file in the data directory. Each request compares `os.stat()` of
it (one system call) with the version its snapshot was built from; on a change
the first request rebuilds (single-flight) and the rest wait for it, so a revoked
key is refused on the very next request. Processes on other hosts learn it through
Redis when REDIS_URL is set (gateway.cluster polls the shared version once a sync
interval).

A failed rebuild (database unreachable) keeps serving the last snapshot: it is
logged, retried with exponential backoff (1 s doubling to 30 s, no rebuild attempt
per request meanwhile) and /health/ready says degraded until a rebuild succeeds.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from django.conf import settings

from providers.config import ModelInfo, ProviderInfo
from providers.config_version import version_file_stamp
from providers.pricing import price_for, warm as warm_prices
from routing.table import EMPTY, ConfigSnapshot, KeyInfo

log = logging.getLogger("junction.snapshot")

DEFAULT_ROUTE = "default"
RETRY_FIRST, RETRY_MAX = 1.0, 30.0



def current_version(remote: bytes | None = None) -> object:
    """The version file's stamp and the cluster's shared version (gateway.cluster)."""
    return (*version_file_stamp(), remote)


def build_snapshot(version: object = None, flushed_count: int = 0) -> ConfigSnapshot:
    """Synchronous: reads every config table once. Never called on the event loop.
    `flushed_count`: the usage recorder's (see gateway.limits.build_budgets)."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from gateway.models import VirtualKey
    from providers.models import Provider
    from gateway.limits import build_budgets
    from providers.crypto import UnreadableSecret
    from routing.selectors import provider_health, route_info, routes_for_snapshot

    try:
        warm_prices()
        providers: dict[str, ProviderInfo] = {}
        model_index: dict[str, list[str]] = {}
        problems: dict[str, str] = {}
        for p in Provider.objects.filter(enabled=True).prefetch_related("models"):
            unreadable = [f for f in ("api_key", "aws_secret_access_key")
                          if isinstance(getattr(p, f), UnreadableSecret)]
            if unreadable:
                # Disabled, not fatal: the rest of the config keeps serving.
                problems[p.name] = (
                    f"disabled: the stored {' and '.join(unreadable)} cannot be decrypted with the "
                    f"configured keys (SECRET_KEY changed? put the old one in SECRET_KEY_FALLBACKS and run "
                    f"`manage.py rotate_secrets`, or enter the secret again)")
                log.error("provider %s %s", p.name, problems[p.name])
                continue
            models = {}
            for m in p.models.all():
                if not m.enabled:
                    continue
                models[m.model_id] = ModelInfo(
                    m.model_id, m.context_window, m.deployment, float(m.input_price), float(m.output_price),
                    None if m.cache_read_price is None else float(m.cache_read_price),
                    None if m.cache_write_price is None else float(m.cache_write_price),
                    price=price_for(p.type, m.model_id, m, p.effective_base_url()),
                    max_output_tokens=m.max_output_tokens)
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
        _price_unlisted_models(providers, routes)
        health, health_latency = provider_health()

        keys: dict[str, KeyInfo] = {}
        keys_rows = VirtualKey.objects.select_related("user", "user__rate_limits")
        for k in keys_rows.prefetch_related("allowed_routes", "user__groups"):
            allowed = frozenset(r.name for r in k.allowed_routes.all()) or None
            user_limits = getattr(k.user, "rate_limits", None)
            keys[k.key_hash] = KeyInfo(
                id=k.id, user_id=k.user_id, username=k.user.get_username(), prefix=k.prefix,
                expires_at=k.expires_at.timestamp() if k.expires_at else None,
                revoked=k.revoked_at is not None, allowed_routes=allowed,
                rpm_limit=k.rpm_limit, tpm_limit=k.tpm_limit,
                team_ids=tuple(g.id for g in k.user.groups.all()), require_prices=k.require_prices,
                user_rpm_limit=user_limits.rpm_limit if user_limits else None,
                user_tpm_limit=user_limits.tpm_limit if user_limits else None)

        anonymous = None
        if settings.GATEWAY_ALLOW_ANONYMOUS:
            user, _ = get_user_model().objects.get_or_create(username="anonymous",
                                                             defaults={"is_active": False})
            from gateway.models import UserLimits

            user_limits = UserLimits.objects.filter(user=user).first()
            anonymous = KeyInfo(id=None, user_id=user.id, username=user.username, prefix="anonymous",
                                user_rpm_limit=user_limits.rpm_limit if user_limits else None,
                                user_tpm_limit=user_limits.tpm_limit if user_limits else None)

        default = routes.get(DEFAULT_ROUTE)
        return ConfigSnapshot(
            version=version, providers=providers, routes=routes, keys=keys,
            default_route=DEFAULT_ROUTE if default else None,
            fallback=default.targets[1:] if default else (),
            model_index={k: tuple(v) for k, v in model_index.items()}, anonymous=anonymous,
            health=health, health_latency_ms=health_latency, provider_problems=problems,
            budgets=build_budgets(cutoff=flushed_count))
    finally:
        connection.close()  # built in a worker thread: do not leave its connection open


def _price_unlisted_models(providers: dict[str, ProviderInfo], routes: dict) -> None:
    """Route targets and default models that have no ProviderModel row: look their
    database price up now (memoised in providers.pricing), not on a request."""
    wanted = {(p.name, p.default_model) for p in providers.values() if p.default_model}
    for route in routes.values():
        wanted.update((t.provider, t.model) for t in route.targets)
        wanted.update((r.target_provider, r.target_model) for r in route.rules if r.target_provider)
    for name, model in wanted:
        provider = providers.get(name)
        if provider is not None and model not in provider.models:
            price_for(provider.type, model, None, provider.base_url)


class SnapshotStore:
    """The current snapshot of one gateway (gateway.state.Gateway owns it)."""

    def __init__(self, cluster=None, recorder=None) -> None:
        self.current: ConfigSnapshot = EMPTY
        self._lock = asyncio.Lock()
        self._cluster = cluster  # its remote_version is part of the version
        self._recorder = recorder  # budget spend is read in step with its flushes
        self.rebuild_error = ""  # the last rebuild's failure, "" when the snapshot is current
        self._failures = 0
        self._retry_at = 0.0

    def version(self) -> object:
        return current_version(self._cluster.remote_version if self._cluster is not None else None)

    def _backing_off(self) -> bool:
        return self.current is not EMPTY and self._failures > 0 and time.monotonic() < self._retry_at

    async def get(self) -> ConfigSnapshot:
        """The current snapshot, rebuilt first if the config version moved."""
        version = self.version()
        snap = self.current
        if snap is not EMPTY and snap.version == version:
            return snap
        if self._backing_off():
            return snap  # the database was unreachable: serve the last snapshot until the next retry
        async with self._lock:
            if self.current is not EMPTY and self.current.version == version:
                return self.current
            if self._backing_off():
                return self.current
            started = time.perf_counter()
            build = functools.partial(build_snapshot, version)
            try:
                # While no usage flush writes: budget spend and the recorder's count agree.
                if self._recorder is not None:
                    self.current = await asyncio.to_thread(self._recorder.consistent, build)
                else:
                    self.current = await asyncio.to_thread(build, 0)
            except Exception as exc:
                if self.current is EMPTY:
                    raise  # nothing to serve from yet
                self._failures += 1
                wait = min(RETRY_MAX, RETRY_FIRST * 2 ** (self._failures - 1))
                self._retry_at = time.monotonic() + wait
                self.rebuild_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                log.error("config snapshot rebuild failed (%s); serving the last snapshot, retry in %.0f s",
                          self.rebuild_error, wait)
                return self.current
            if self._failures:
                log.warning("config snapshot rebuilt after %d failed attempt(s)", self._failures)
            self._failures, self.rebuild_error = 0, ""
            log.info("config snapshot rebuilt in %.1f ms", (time.perf_counter() - started) * 1000)
            return self.current
