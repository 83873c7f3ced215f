"""The exact response cache: a repeated identical request (CI jobs, evaluation runs, a
retry after a client crash) answered by the gateway without an upstream call.

Per route (Route.response_cache, off by default): only deterministic requests
(temperature 0) unless the route opts in for any temperature; TTL and a size bound per
route (the oldest entries evicted). The key hashes the normalised request (the serving
route, the client's format and its body without the stream switches) and its scope,
the user (else the key): no answer crosses users. Stored in Redis when REDIS_URL is set
(every process shares it), else in the database (gateway.models.ResponseCacheEntry).

An answer is stored whole in the client's format; a streaming request is answered from
it as a proper stream, the canonical events of the stored response run through the
client codec's own stream encoder (the bytes a translated upstream stream gets).

Request controls: `cache-control: no-store` or `x-gateway-cache: bypass` skip the cache
both ways, `cache-control: no-cache` skips the lookup and stores the fresh answer.
Response header `x-gateway-cache: hit | miss | bypass`. Identical requests in flight at
once make one upstream call: the others wait for it (single-flight), in one process, across
processes through Redis, and across the workers of one `serve` without Redis through lock
files in the data dir.
A hit's UsageRecord has cache_hit, cost 0 and saved_usd = what the answer cost upstream.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import time
from datetime import datetime, timedelta, timezone

import orjson
from django.conf import settings

from providers.codecs import canonical as c

log = logging.getLogger("junction.cache")

# Formats whose answers are cached. A Responses request is keyed after its previous_response_id
# was expanded into the conversation it names (app.serve): the same conversation, the same key.
# A replayed Responses answer gets a fresh id and is stored for chaining like any other.
FORMATS = ("openai_chat", "anthropic_messages", "ollama", "openai_responses")
# Body fields that do not change the answer: stream or not is served from the same entry, and
# Responses' `store` only says whether the gateway keeps the conversation.
_NOT_IN_KEY = ("stream", "stream_options", "store")
FLIGHT_WAIT = 300.0  # seconds a follower waits for the leader's answer before going upstream itself
PREFIX = "junction:rc:"
# Across processes (Redis): the leader's lock expires on its own after LOCK_SECONDS (a leader that
# died frees it); a waiter polls for the entry every POLL_SECONDS, at most CROSS_WAIT seconds.
LOCK_SECONDS, POLL_SECONDS, CROSS_WAIT = 30.0, 0.025, 30.0


def deterministic(body: dict) -> bool:
    temperature = body.get("temperature", (body.get("options") or {}).get("temperature")
                           if isinstance(body.get("options"), dict) else None)
    return temperature == 0


def request_key(route: str, client_format: str, body: dict, scope: str) -> str:
    normal = {k: v for k, v in body.items() if k not in _NOT_IN_KEY}
    data = orjson.dumps([scope, route, client_format, normal], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()


def _controls(headers: dict) -> tuple[bool, bool]:
    """(read, write) allowed by the request's headers."""
    if headers.get(b"x-gateway-cache", b"").strip().lower() == b"bypass":
        return False, False
    control = headers.get(b"cache-control", b"").lower()
    if b"no-store" in control:
        return False, False
    if b"no-cache" in control:
        return False, True
    return True, True


class Slot:
    """One cacheable request's place in the cache: the entry found (a hit), or the right
    (and duty) to store the answer it is about to fetch."""

    __slots__ = ("cache", "key", "route", "ttl", "max_entries", "entry", "write", "_flight", "_writing",
                 "_lock")

    def __init__(self, cache: ResponseCache, key: str, route, write: bool) -> None:
        self.cache, self.key, self.write = cache, key, write
        self.route, self.ttl = route.name, route.response_cache_ttl
        self.max_entries = route.response_cache_max_entries
        self.entry: tuple[bytes, dict] | None = None
        self._flight: asyncio.Future | None = None
        self._writing: asyncio.Future | None = None
        self._lock: str | None = None  # the Redis lock's token while this slot leads across processes

    def store(self, body: bytes, ctx) -> None:
        """Stored by a task of its own: the response is already sent, and the client's
        disconnect (which cancels the request's task) must not cut the write short.
        Identical requests waiting on this one are released once it is written."""
        if not self.write or ctx.usage is None or ctx.usage.estimated:
            return
        cost, _ = ctx.cost()
        u = ctx.usage
        meta = {"provider": ctx.provider, "model": ctx.model, "cost": cost,
                "usage": [u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens,
                          u.reasoning_tokens]}
        self._writing = asyncio.ensure_future(self._put(body, meta))
        self.cache._writes.add(self._writing)
        self._writing.add_done_callback(self.cache._writes.discard)

    async def _put(self, body: bytes, meta: dict) -> None:
        try:
            await self.cache.backend.put(self.key, self.route, body, meta, self.ttl, self.max_entries)
        except Exception:  # the answer was served: a cache that cannot store is only a miss next time
            log.exception("response cache: store failed")

    def finish(self) -> None:
        """Release the requests waiting for this one (they look the entry up again), once
        its answer is written."""
        if self._flight is None:
            return
        if self._writing is not None and not self._writing.done():
            self._writing.add_done_callback(lambda _: self._release())
        else:
            self._release()

    def _release(self) -> None:
        flight, self._flight = self._flight, None
        if flight is not None:
            self.cache._flights.pop(self.key, None)
            if not flight.done():
                flight.set_result(None)
        token, self._lock = self._lock, None
        if token is not None:  # the other processes' waiters find the entry, or take the lock themselves
            task = asyncio.ensure_future(self.cache.unlock(self.key, token))
            self.cache._writes.add(task)
            task.add_done_callback(self.cache._writes.discard)


class ResponseCache:
    """Owned by the Gateway object; the backend is chosen on first use. `snapshots` (the
    gateway's SnapshotStore): a config version change (any config save, and every purge)
    empties the in-process tier."""

    def __init__(self, snapshots=None) -> None:
        self._backend = None
        self._snapshots = snapshots
        self._flights: dict[str, asyncio.Future] = {}
        self._across = None  # see `across`
        self._writes: set[asyncio.Future] = set()  # stores in progress (a reference keeps them alive)

    @property
    def backend(self):
        if self._backend is None:
            if settings.REDIS_URL:
                self._backend = RedisBackend(settings.REDIS_URL)
            elif settings.GATEWAY_RESPONSE_CACHE_LOCAL_BYTES > 0:
                self._backend = LocalTier(DatabaseBackend(), settings.GATEWAY_RESPONSE_CACHE_LOCAL_BYTES,
                                          settings.GATEWAY_RESPONSE_CACHE_LOCAL_TTL)
            else:
                self._backend = DatabaseBackend()
        return self._backend

    async def begin(self, ctx, route, client_format: str, endpoint: str, body: dict,
                    headers: dict) -> Slot | None:
        """None: not cached (ctx.cache_status stays "bypass"). A Slot with `entry`: a hit."""
        if route is None or not route.response_cache or endpoint != "generate" \
                or client_format not in FORMATS:
            return None
        read, write = _controls(headers)
        if not (read or write) or not (route.response_cache_any_temperature or deterministic(body)):
            return None
        backend = self.backend
        if self._snapshots is not None and isinstance(backend, LocalTier):
            backend.sync(self._snapshots.current.version)
        key = ctx.key
        scope = f"u{key.user_id}" if key is not None and key.user_id is not None else \
            f"k{key.id if key is not None else ''}"
        slot = Slot(self, request_key(route.name, client_format, body, scope), route, write)
        ctx.cache_status = "miss"
        if not read:
            return slot
        slot.entry = await self._get(slot.key)
        if slot.entry is None:
            flight = self._flights.get(slot.key)
            if flight is not None:  # the same request is being fetched: wait for its answer
                try:
                    await asyncio.wait_for(asyncio.shield(flight), FLIGHT_WAIT)
                except TimeoutError:
                    pass
                slot.entry = await self._get(slot.key)
            if slot.entry is None and slot.key not in self._flights:
                slot._flight = self._flights[slot.key] = asyncio.get_running_loop().create_future()
                await self._lead_across(slot)
        if slot.entry is not None:
            ctx.cache_status = "hit"
        return slot

    @property
    def across(self):
        """Who arbitrates between processes: Redis, the host's lock files (several workers
        without Redis), or nobody (one process)."""
        if self._across is None:
            backend = self.backend
            if isinstance(backend, RedisBackend):
                self._across = backend
            elif settings.GATEWAY_WORKERS > 1:
                self._across = HostFlights(settings.DATA_DIR / "cache-flights", self._get)
            else:
                self._across = False
        return self._across

    async def _lead_across(self, slot: Slot) -> None:
        """Single-flight across processes: the first process to take the key's lock fetches
        the answer; the others wait for its entry (and release their own followers once it
        is there) or, when the wait is over, go upstream themselves."""
        across = self.across
        if not across:
            return
        try:
            slot._lock, slot.entry = await across.lead_or_wait(slot.key, CROSS_WAIT)
        except Exception:  # a cache outage: this process fetches the answer itself
            log.exception("response cache: cross-process single-flight failed")
            return
        if slot.entry is not None:
            slot._release()  # this process's followers look the entry up too

    async def unlock(self, key: str, token: str) -> None:
        try:
            await self.across.unlock(key, token)
        except Exception:  # it expires on its own
            log.exception("response cache: unlock failed")

    async def _get(self, key: str):
        try:
            return await self.backend.get(key)
        except Exception:  # a cache outage is a miss, never a failed request
            log.exception("response cache: lookup failed")
            return None

    async def purge(self, route: str) -> int:
        return await self.backend.purge(route)


# ---------------------------------------------------------------------------- replay


async def replay(exchange, entry: tuple[bytes, dict]) -> None:
    """Answer `exchange` from a cached entry: the stored body, or a stream made of it. A
    Responses answer gets this request's own id (and is stored for chaining if it asks)."""
    from .io import encode_headers, send_bytes

    body, meta = entry
    ctx = exchange.ctx
    ctx.provider, ctx.model = meta.get("provider", ""), meta.get("model", "")
    ctx.saved_usd = float(meta.get("cost") or 0.0)
    ctx.status = 200
    ctx.ttft = time.perf_counter() - ctx.started
    headers = ctx.response_headers()
    responses = exchange.response_id is not None
    if responses:
        body = _fresh_response(body, exchange)
    if not exchange.stream:
        if responses and exchange.on_response is not None:
            await exchange.on_response(orjson.loads(body))
        await send_bytes(exchange.send, 200, body, "application/json", headers)
        return
    codec = exchange.client_codec
    request = exchange.canonical
    encoder = codec.stream_encoder(request)
    response = codec.decode_response(orjson.loads(body))
    if responses:
        response.id = exchange.response_id
    out = [encoder.encode(event) for event in response_events(response)]
    out.append(encoder.close())
    stream = b"".join(out)
    if responses and exchange.on_response is not None:
        from .forward import ResponsesCapture

        capture = ResponsesCapture()
        capture.feed(stream)
        if capture.response is not None:
            await exchange.on_response(capture.response)
    headers["cache-control"] = "no-cache"
    await exchange.send({"type": "http.response.start", "status": 200,
                         "headers": [(b"content-type", codec.stream_media_type.encode())]
                         + encode_headers(headers)})
    await exchange.send({"type": "http.response.body", "body": stream, "more_body": False})


def _fresh_response(body: bytes, exchange) -> bytes:
    """A stored Responses body as this request's answer: its own id, creation time and
    `store` echo (the key leaves `store` out)."""
    obj = orjson.loads(body)
    obj["id"] = exchange.response_id
    obj["created_at"] = int(time.time())
    if "store" in obj:
        obj["store"] = exchange.body.get("store", True) is not False
    return orjson.dumps(obj)


def response_events(response: c.Response) -> list:
    """A whole response as the canonical stream a provider would have sent for it."""
    usage = response.usage
    prompt = c.Usage(input_tokens=usage.input_tokens, cache_read_tokens=usage.cache_read_tokens,
                     cache_write_tokens=usage.cache_write_tokens)
    events: list = [c.MessageStart(response.id, response.model, prompt)]
    for index, block in enumerate(response.content):
        if isinstance(block, c.TextBlock):
            events += [c.BlockStart(index, c.TextBlock("")), c.BlockDelta(index, "text", block.text)]
        elif isinstance(block, c.ToolUseBlock):
            events += [c.BlockStart(index, c.ToolUseBlock(block.id, block.name, {})),
                       c.BlockDelta(index, "json", orjson.dumps(block.input).decode())]
        elif isinstance(block, c.ThinkingBlock):
            events.append(c.BlockStart(index, c.ThinkingBlock("")))
            events.append(c.BlockDelta(index, "thinking", block.thinking))
            if block.signature:
                events.append(c.BlockDelta(index, "signature", block.signature))
        else:  # redacted thinking, server tools: whole at their start
            events.append(c.BlockStart(index, block))
        events.append(c.BlockStop(index))
    events += [c.MessageDelta(response.stop_reason, response.stop_sequence, usage), c.MessageStop()]
    return events


class StreamCollector:
    """Reads the client-bound stream of a cacheable request back into one response (only
    for routes with the response cache on: the default hot path never parses)."""

    def __init__(self, codec) -> None:
        self.codec = codec
        self.decoder = codec.stream_decoder()
        self.ident, self.model = "", ""
        self.blocks: dict[int, list] = {}  # index -> [block, parts]
        self.stop_reason = None
        self.stop_sequence = None
        self.failed = False

    def feed(self, data: bytes) -> None:
        if not self.failed:
            try:
                self._take(self.decoder.feed(data))
            except Exception:  # never break the stream over the cache
                self.failed = True

    def _take(self, events) -> None:
        for e in events:
            if isinstance(e, c.MessageStart):
                self.ident, self.model = e.id, e.model
            elif isinstance(e, c.BlockStart):
                self.blocks[e.index] = [e.block, []]
            elif isinstance(e, c.BlockDelta) and e.index in self.blocks:
                self.blocks[e.index][1].append((e.kind, e.value))
            elif isinstance(e, c.MessageDelta):
                self.stop_reason = e.stop_reason or self.stop_reason
                self.stop_sequence = e.stop_sequence or self.stop_sequence
            elif isinstance(e, c.StreamError):
                self.failed = True

    def response(self, usage: c.Usage) -> c.Response | None:
        if self.failed:
            return None
        try:
            self._take(self.decoder.close())
        except Exception:
            return None
        content = []
        for index in sorted(self.blocks):
            block, parts = self.blocks[index]
            if isinstance(block, c.TextBlock):
                block = c.TextBlock("".join(v for k, v in parts if k == "text"))
            elif isinstance(block, c.ToolUseBlock):
                raw = "".join(v for k, v in parts if k == "json")
                block = c.ToolUseBlock(block.id, block.name, orjson.loads(raw) if raw else dict(block.input))
            elif isinstance(block, c.ThinkingBlock):
                block = c.ThinkingBlock("".join(v for k, v in parts if k == "thinking"),
                                        "".join(v for k, v in parts if k == "signature") or block.signature)
            content.append(block)
        if self.stop_reason is None:
            return None  # the stream did not finish
        return c.Response(self.ident, self.model, content, self.stop_reason, self.stop_sequence, usage)


# ---------------------------------------------------------------------------- backends


class DatabaseBackend:
    """gateway.models.ResponseCacheEntry (Django's async ORM): the embedded profile."""

    async def get(self, key: str):
        row = await self.fetch(key)
        return None if row is None else row[:2]

    async def fetch(self, key: str):
        """(body, meta, expires_at as a timestamp, route) of a live entry, else None."""
        from gateway.models import ResponseCacheEntry

        row = await ResponseCacheEntry.objects.filter(key=key, expires_at__gt=_now()).only(
            "body", "meta", "expires_at", "route").afirst()
        return None if row is None else (bytes(row.body), row.meta, row.expires_at.timestamp(), row.route)

    async def put(self, key: str, route: str, body: bytes, meta: dict, ttl: int,
                  max_entries: int) -> list[str]:
        """Returns the keys evicted for the size bound."""
        from gateway.models import ResponseCacheEntry

        now = _now()
        await ResponseCacheEntry.objects.aupdate_or_create(
            key=key, defaults={"route": route, "body": body, "meta": meta, "created_at": now,
                               "expires_at": now + timedelta(seconds=ttl)})
        # Bounded per route: expired entries go, then the oldest beyond the bound.
        rows = ResponseCacheEntry.objects.filter(route=route)
        await rows.filter(expires_at__lte=now).adelete()
        stale = [k async for k in rows.order_by("-created_at").values_list("key", flat=True)[max_entries:]]
        if stale:
            await ResponseCacheEntry.objects.filter(key__in=stale).adelete()
        return stale

    async def purge(self, route: str) -> int:
        from gateway.models import ResponseCacheEntry

        deleted, _ = await ResponseCacheEntry.objects.filter(route=route).adelete()
        return deleted


class LocalTier:
    """A bytes-bounded LRU in this process in front of the database backend: a hit found
    here costs no ORM lookup (~1.45 ms of CPU on the event loop). An entry is kept until
    the earlier of its own expiry and `ttl` seconds (GATEWAY_RESPONSE_CACHE_LOCAL_TTL) after
    it was read from or written to the database. The key carries the user scope as in the
    database. Invalidation: a purge or eviction made by this process drops its entries at
    once; a purge in another process (the admin) bumps the config version, which empties
    the tier of every process that sees it (same data directory, or Redis) before its next
    request; an eviction in another process, or a purge where the version is not shared,
    is seen here at most `ttl` seconds late."""

    def __init__(self, inner: DatabaseBackend, max_bytes: int, ttl: float) -> None:
        from collections import OrderedDict

        self.inner, self.max_bytes, self.ttl = inner, max_bytes, ttl
        self.entries: OrderedDict[str, tuple[bytes, dict, float, str, int]] = OrderedDict()
        self.size = 0
        self.version: object = None

    def sync(self, version: object) -> None:
        if version != self.version:
            self.version = version
            self.entries.clear()
            self.size = 0

    async def get(self, key: str):
        entry = self.entries.get(key)
        if entry is not None:
            if entry[2] > time.time():
                self.entries.move_to_end(key)
                return entry[0], entry[1]
            self._drop(key)
        row = await self.inner.fetch(key)
        if row is None:
            return None
        body, meta, expires, route = row
        self._keep(key, route, body, meta, expires)
        return body, meta

    async def put(self, key: str, route: str, body: bytes, meta: dict, ttl: int,
                  max_entries: int) -> list[str]:
        evicted = await self.inner.put(key, route, body, meta, ttl, max_entries)
        for stale in evicted:
            self._drop(stale)
        self._keep(key, route, body, meta, time.time() + ttl)
        return evicted

    async def purge(self, route: str) -> int:
        for key in [k for k, e in self.entries.items() if e[3] == route]:
            self._drop(key)
        return await self.inner.purge(route)

    def _keep(self, key: str, route: str, body: bytes, meta: dict, expires: float) -> None:
        size = len(body) + 512  # the meta and the bookkeeping, roughly
        if size > self.max_bytes // 8:
            return  # one huge answer must not flush the tier
        self._drop(key)
        self.entries[key] = (body, meta, min(expires, time.time() + self.ttl), route, size)
        self.size += size
        while self.size > self.max_bytes:
            _, old = self.entries.popitem(last=False)
            self.size -= old[4]

    def _drop(self, key: str) -> None:
        old = self.entries.pop(key, None)
        if old is not None:
            self.size -= old[4]


class RedisBackend:
    """One string per entry (expiring on its own) and one sorted set per route (by store
    time) for the size bound: the oldest beyond it are evicted at each store."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self.client = redis.from_url(url)

    async def get(self, key: str):
        raw = await self.client.get(PREFIX + key)
        return None if raw is None else _decoded(raw)

    async def lead_or_wait(self, key: str, wait: float) -> tuple[str | None, tuple | None]:
        """(lock token, None): this process leads, it fetches the answer and stores it.
        (None, entry): another process stored it meanwhile. (None, None): waited `wait`
        seconds for nothing; go upstream anyway. A leader that releases its lock without
        an entry (its request failed) lets one of the waiters lead in its place."""
        import secrets

        deadline = time.monotonic() + wait
        lock = PREFIX + "lock:" + key
        while True:
            token = secrets.token_hex(8)
            if await self.client.set(lock, token, nx=True, px=int(LOCK_SECONDS * 1000)):
                return token, None
            while True:
                await asyncio.sleep(POLL_SECONDS)
                async with self.client.pipeline(transaction=False) as pipe:
                    pipe.get(PREFIX + key)
                    pipe.exists(lock)
                    raw, locked = await pipe.execute()
                if raw is not None:
                    return None, _decoded(raw)
                if time.monotonic() >= deadline:
                    return None, None
                if not locked:
                    break

    async def unlock(self, key: str, token: str) -> None:
        await self.client.eval(_UNLOCK, 1, PREFIX + "lock:" + key, token)

    async def put(self, key: str, route: str, body: bytes, meta: dict, ttl: int, max_entries: int) -> None:
        index = PREFIX + "route:" + hashlib.sha256(route.encode()).hexdigest()[:32]
        now = time.time()
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(PREFIX + key, orjson.dumps({"body": body.decode(), "meta": meta}), ex=max(1, ttl))
            pipe.zadd(index, {key: now})
            pipe.zremrangebyscore(index, "-inf", now - ttl)  # expired on their own already
            pipe.zrange(index, 0, -max_entries - 1)
            pipe.zremrangebyrank(index, 0, -max_entries - 1)
            results = await pipe.execute()
        evicted = results[3]
        if evicted:
            await self.client.delete(*(PREFIX + k.decode() for k in evicted))

    async def purge(self, route: str) -> int:
        index = PREFIX + "route:" + hashlib.sha256(route.encode()).hexdigest()[:32]
        keys = await self.client.zrange(index, 0, -1)
        if keys:
            await self.client.delete(*(PREFIX + k.decode() for k in keys))
        await self.client.delete(index)
        return len(keys)


# Deletes the lock only while it is still the caller's (an expired one may be another's now).
_UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class HostFlights:
    """Single-flight across the workers of one host without Redis: the leader holds an
    exclusive flock on a file named after the key in the data dir (released, and the file
    removed, once its answer is stored; a worker that dies releases it with its descriptors).
    Waiters poll the cache for the entry, as with Redis. Removing the file can let two
    processes lead at once in a narrow race; each then checks the cache first, so at worst
    a failed leader's key is fetched twice."""

    def __init__(self, directory, get) -> None:
        self.directory, self.get = directory, get
        directory.mkdir(parents=True, exist_ok=True)
        self._held: dict[str, tuple[int, str]] = {}  # token → (descriptor, path)

    def _try_lock(self, path: str) -> int | None:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    async def lead_or_wait(self, key: str, wait: float) -> tuple[str | None, tuple | None]:
        """The same contract as RedisBackend.lead_or_wait."""
        path = str(self.directory / key[:64])
        deadline = time.monotonic() + wait
        while True:
            fd = self._try_lock(path)
            if fd is not None:
                entry = await self.get(key)  # a leader may have stored it and left just now
                if entry is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                    return None, entry
                token = f"{os.getpid()}:{fd}:{time.monotonic_ns()}"
                self._held[token] = (fd, path)
                return token, None
            await asyncio.sleep(POLL_SECONDS)
            entry = await self.get(key)
            if entry is not None:
                return None, entry
            if time.monotonic() >= deadline:
                return None, None

    async def unlock(self, key: str, token: str) -> None:
        fd, path = self._held.pop(token, (None, None))
        if fd is None:
            return
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _decoded(raw: bytes | str) -> tuple[bytes, dict]:
    stored = orjson.loads(raw)
    return stored["body"].encode(), stored["meta"]


def purge_routes(names: list[str]) -> int:
    """From the admin (a sync view, off the event loop): drop every cached answer of these routes."""
    if settings.REDIS_URL:
        async def purge() -> int:
            backend = RedisBackend(settings.REDIS_URL)
            try:
                return sum([await backend.purge(name) for name in names])
            finally:
                await backend.client.aclose()

        return asyncio.run(purge())
    from gateway.models import ResponseCacheEntry
    from providers.config_version import bump_version

    deleted = ResponseCacheEntry.objects.filter(route__in=names).delete()[0]
    bump_version()  # every gateway process empties its in-process tier before its next request (LocalTier)
    return deleted


def _now() -> datetime:
    return datetime.now(tz=timezone.utc)
