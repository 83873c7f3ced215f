"""One gateway's state, in one object built by gateway.asgi (tests build one each).

Owns what outlives a request: the config snapshot store, budgets and rate limits,
runtime stats (latency, circuits, session affinity), the cluster link (Redis), the
usage recorder and the pooled upstream HTTP client, plus an event publisher that
the recorder feeds once per finished request (metrics, a live view).

Nothing here starts from the request path: `start()` runs when the server starts
(ASGI lifespan, or gateway.daphne_main under Daphne) and `stop()` when it stops;
stop flushes the usage still buffered in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from django.conf import settings

from providers.http import create_client
from providers.upstream_client import Client
from routing.stats import RuntimeStats

from . import access_log
from .cluster import Cluster
from .limits import Limits
from .live import LiveFeed
from .metrics import observe
from .proxy.prompt_cache import SessionPrefixes
from .proxy.response_cache import ResponseCache
from .snapshot import SnapshotStore
from .usage import UsageRecorder

log = logging.getLogger("junction.gateway")


class EventPublisher:
    """Listeners called with every finished request's usage fields, on the event loop:
    they must be cheap and must not raise (a failing one is logged and dropped)."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[dict], None]] = []

    def subscribe(self, listener: Callable[[dict], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.unsubscribe(listener)

    def unsubscribe(self, listener: Callable[[dict], None]) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def publish(self, fields: dict) -> None:
        failed = None
        for listener in self.listeners:
            try:
                listener(fields)
            except Exception:
                log.exception("event listener failed; unsubscribed")
                failed = [*(failed or ()), listener]
        for listener in failed or ():  # not while iterating: the next one would be skipped
            self.unsubscribe(listener)


class Gateway:
    def __init__(self, *, recorder: UsageRecorder | None = None, stats: RuntimeStats | None = None) -> None:
        self.stats = stats or RuntimeStats()
        self.recorder = recorder or UsageRecorder()
        self.cluster = Cluster(self.stats)
        self.limits = Limits(self.recorder)
        self.snapshots = SnapshotStore(self.cluster, self.recorder)
        self.events = EventPublisher()
        self.prompt_prefixes = SessionPrefixes()  # per session: the messages it sent last (prompt_cache.py)
        self.responses = ResponseCache(self.snapshots)  # the exact response cache (response_cache.py)
        self.live = LiveFeed()  # the live view's watchers and events (gateway.live)
        self.upstream: Client | None = None  # created in start(), on the serving event loop
        self.running = False
        # Graceful drain (gateway.daphne_main): `draining` once SIGTERM arrived (no new
        # connections); `expired` once the grace period is over and the requests still in
        # flight are being cancelled: they end in the client's format (503, or an error event).
        self.draining = False
        self.expired = False
        self._access_log: Callable[[], None] | None = None
        self._usage_guard: asyncio.Task | None = None  # UsageRecorder.guard: the writer never starves
        self.console = None  # the text access log around every HTTP request (gateway.access_log)
        self.recorder.listeners += [self.observe, self.events.publish]
        self.events.subscribe(self.live.publish)  # a flag test while no one watches

    def observe(self, record: dict) -> None:
        """Prometheus metrics for one finished request (labels folded by the current config)."""
        observe(record, self.snapshots.current)

    async def start(self) -> None:
        """Start the background work, in dependency order: the usage writer first (budget
        refreshes read its flush times), then the upstream client, limits and cluster."""
        if self.running:
            return
        self.recorder.start()
        if self.recorder.idle:  # a normal-priority writer cannot starve
            self._usage_guard = asyncio.get_running_loop().create_task(self.recorder.guard(),
                                                                       name="usage-guard")
        self.upstream = create_client()
        self.limits.start()
        self.cluster.start()
        self._access_log = access_log.install(self, settings.GATEWAY_LOG_FORMAT)
        self.running = True
        log.info("gateway started")

    async def stop(self) -> None:
        """Stop in reverse order; the usage still queued is written before this returns."""
        if not self.running:
            return
        self.running = False
        if self._access_log is not None:
            self._access_log()
        self.live.stop()
        await self.cluster.stop()
        await self.limits.stop()
        if self._usage_guard is not None:
            self._usage_guard.cancel()
            await asyncio.gather(self._usage_guard, return_exceptions=True)
            self._usage_guard = None
        if self.upstream is not None:
            await self.upstream.close()  # idle connections; a request still in flight finishes
        # Joins the writer thread and flushes: off the event loop.
        await asyncio.to_thread(self.recorder.close)
        log.info("gateway stopped")
