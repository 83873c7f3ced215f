"""State shared by the gateway processes of a scaled deployment (REDIS_URL set):

- circuit breakers: a circuit one process opens is open in every process within a
  sync interval (and closed again everywhere when a probe succeeds somewhere);
- the config version: an admin save on any host reaches every process, also those
  that do not share the data directory's version file.

Nothing here is on the request path: a background task per process pushes local
circuit transitions and pulls the shared state every GATEWAY_CLUSTER_SYNC_SECONDS;
the hot path only reads what it left in memory. Without REDIS_URL it never starts.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging

from django.conf import settings

from providers.config_version import VERSION_KEY
from routing.stats import OPEN, RuntimeStats

log = logging.getLogger("junction.cluster")

CIRCUITS_KEY = "junction:circuits"
SEPARATOR = "\x1f"


class Cluster:
    def __init__(self, stats: RuntimeStats) -> None:
        self.stats = stats
        self.remote_version: bytes | None = None
        self._outbox: dict[tuple[str, str], float | None] = {}
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None and settings.REDIS_URL:
            self.stats.listener = self.circuit_changed
            # A fresh context: the loop must not inherit the caller's state.
            self._task = asyncio.get_running_loop().create_task(self._run(), context=contextvars.Context())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            self.stats.listener = None

    def circuit_changed(self, target: tuple[str, str], state: str, until: float | None) -> None:
        self._outbox[target] = until if state == OPEN else None

    async def _run(self) -> None:
        import redis.asyncio as redis

        client = redis.from_url(settings.REDIS_URL)
        while True:
            try:
                await self.sync(client)
            except Exception as exc:  # Redis down: keep serving on local state
                log.warning("cluster sync failed: %s", type(exc).__name__)
            await asyncio.sleep(settings.GATEWAY_CLUSTER_SYNC_SECONDS)

    async def sync(self, client) -> None:
        outbox, self._outbox = self._outbox, {}
        pipe = client.pipeline()
        for (provider, model), until in outbox.items():
            field = provider + SEPARATOR + model
            if until is None:
                pipe.hdel(CIRCUITS_KEY, field)
            else:
                pipe.hset(CIRCUITS_KEY, field, repr(until))
        pipe.get(VERSION_KEY)
        pipe.hgetall(CIRCUITS_KEY)
        *_, version, circuits = await pipe.execute()
        self.remote_version = version
        open_until = {}
        for field, until in circuits.items():
            provider, _, model = field.decode().partition(SEPARATOR)
            open_until[(provider, model)] = float(until)
        self.stats.apply_remote(open_until)

