"""Live view: usage events over a Channels websocket (/ws/live), watched on /live/.

Each Gateway owns one `LiveFeed` (gateway.state): its `publish(fields)` listens to the
gateway's events, and the websocket consumers it serves count as its watchers. When no
one watches anywhere, publishing is one attribute test: `active` is flipped by this
process's consumers and, with Redis, by a poller thread that reads a key the watching
processes keep alive (one GET every POLL_SECONDS, off the event loop).
"""

from __future__ import annotations

import asyncio
import logging
import threading

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

log = logging.getLogger("junction.live")

GROUP = "junction.live"
WATCH_KEY = "junction:live:watchers"  # Redis key, alive while some process has watchers
POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 5.0
EVENT_FIELDS = (
    "request_id",
    "key_id",
    "user_id",
    "route",
    "provider",
    "model",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "session_id",
    "endpoint",
    "attempts",
)


class LiveFeed:
    """One gateway's live view: who watches it, and the events it forwards to them."""

    def __init__(self) -> None:
        self.local = 0  # consumers connected to this process
        self.remote = False  # some process has watchers (Redis deployments)
        self.active = False
        self.polling = False
        self._stopped = threading.Event()

    def update(self) -> None:
        self.active = self.local > 0 or self.remote

    def ensure_polling(self) -> None:
        if not self.polling and not self._stopped.is_set():
            self.polling = True
            if settings.REDIS_URL:
                threading.Thread(target=self._poll, name="live-watchers", daemon=True).start()

    def stop(self) -> None:
        """End the poller (within POLL_SECONDS); called when the gateway stops."""
        self._stopped.set()

    def _poll(self) -> None:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
        while not self._stopped.is_set():
            try:
                if self.local:
                    client.set(WATCH_KEY, "1", px=int(KEEPALIVE_SECONDS * 3000))
                self.remote = bool(client.exists(WATCH_KEY))
            except Exception:  # Redis away: no live events, never an error on the hot path
                self.remote = False
            self.update()
            self._stopped.wait(POLL_SECONDS)
        client.close()

    def publish(self, fields: dict) -> None:
        """Usage recorder listener: called once per request on the event loop."""
        if not self.active:
            if not self.polling:  # first request of a serving process: learn about remote watchers
                self.ensure_polling()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop (tests, commands): nothing to watch from here
            return
        event = {name: fields.get(name) for name in EVENT_FIELDS}
        event["cost_usd"] = float(event["cost_usd"] or 0)
        created = fields.get("created_at")
        event["time"] = created.isoformat() if created is not None else None
        loop.create_task(_send(event))

    def consumer(self):
        """The websocket consumer application for this feed (/ws/live)."""
        return LiveConsumer.as_asgi(feed=self)


async def _send(event: dict) -> None:
    try:
        await get_channel_layer().group_send(GROUP, {"type": "usage.event", "event": event})
    except Exception:
        log.warning("live event not published", exc_info=True)


class LiveConsumer(AsyncJsonWebsocketConsumer):
    def __init__(self, *args, feed: LiveFeed, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.feed = feed  # given by LiveFeed.consumer()

    async def connect(self):
        from .reports.access import can_view_spend

        user = self.scope.get("user")
        # A permission check reads the database: off the event loop.
        allowed = user is not None and user.is_authenticated and \
            await database_sync_to_async(can_view_spend)(user)
        if not allowed:
            await self.close(code=4403)
            return
        await self.channel_layer.group_add(GROUP, self.channel_name)
        self.feed.local += 1
        self.feed.update()
        self.feed.ensure_polling()
        self.names: dict = {}
        await self.accept()
        await self.send_json({"type": "hello"})

    async def disconnect(self, code):
        if getattr(self, "names", None) is not None:
            self.feed.local -= 1
            self.feed.update()
            await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def usage_event(self, message):
        event = dict(message["event"])
        event["user"], event["key"] = await self._names(event.get("user_id"), event.get("key_id"))
        await self.send_json({"type": "usage", "event": event})

    async def _names(self, user_id, key_id):
        ident = (user_id, key_id)
        if ident not in self.names:
            from channels.db import database_sync_to_async

            self.names[ident] = await database_sync_to_async(_lookup)(user_id, key_id)
        return self.names[ident]


def _lookup(user_id, key_id) -> tuple[str, str]:
    from django.contrib.auth import get_user_model

    from .models import VirtualKey

    users, keys = get_user_model().objects.filter(id=user_id), VirtualKey.objects.filter(id=key_id)
    user = users.values_list("username", flat=True).first() if user_id else None
    key = keys.values_list("prefix", flat=True).first() if key_id else None
    return user or "-", key or "-"
