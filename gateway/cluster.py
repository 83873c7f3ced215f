"""State shared by the gateway processes of a scaled deployment:

- circuit breakers: a circuit one process opens is open in every process within a
  sync interval (and closed again everywhere when a probe succeeds somewhere);
  through Redis when REDIS_URL is set, else, for the workers of one `serve` on one
  host (GATEWAY_WORKERS > 1), through a file in the data dir (gateway.host_circuits);
- the config version (Redis only): an admin save on any host reaches every process,
  also those that do not share the data directory's version file.

Nothing here is on the request path: a background task per process pushes local
circuit transitions and pulls the shared state every GATEWAY_CLUSTER_SYNC_SECONDS;
the hot path only reads what it left in memory. A lone process without Redis starts none.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging

from django.conf import settings

from providers.config_version import VERSION_KEY
from routing.stats import OPEN, RuntimeStats

from .host_circuits import HostCircuits

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
        if self._task is not None:
            return
        if settings.REDIS_URL:
            run = self._run()
        elif settings.GATEWAY_WORKERS > 1:
            run = self._run_host(HostCircuits(settings.DATA_DIR / "cluster"))
        else:
            return
        self.stats.listener = self.circuit_changed
        # A fresh context: the loop must not inherit the caller's state.
        self._task = asyncio.get_running_loop().create_task(run, context=contextvars.Context())

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

    async def _run_host(self, store: HostCircuits) -> None:
        while True:
            outbox, self._outbox = self._outbox, {}
            try:
                self.stats.apply_remote(await asyncio.to_thread(store.sync, outbox))
            except Exception as exc:  # the data dir unwritable: keep serving on local state
                log.warning("host circuit sync failed: %s", exc)
                for target, until in outbox.items():  # retried at the next sync
                    self._outbox.setdefault(target, until)
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


# Budgets and RPM/TPM shared by all processes (REDIS_URL). One script per admission:
# check every hard budget (spent + what requests in flight reserved) and the request/token
# windows of the key and of its user (per calendar minute), then reserve and count, atomically.
# Reservations are sorted-set members that expire (GATEWAY_RESERVE_TTL_SECONDS), so a
# process that dies mid-request cannot hold a budget for ever. Spent counters start from the
# database's total (seed) and never go below it: a Redis restart loses at most what the
# database did not hold yet.
ADMIT_LUA = """
local now, member, reserve = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local hold_ttl, nb = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {'0'}
local a = 6
for b = 1, nb do
  local spent_key, held_key = KEYS[2 * b - 1], KEYS[2 * b]
  local amount, hard, seed, ttl = tonumber(ARGV[a]), ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local spent = tonumber(redis.call('GET', spent_key) or '0')
  if seed > spent then
    spent = seed
    redis.call('SET', spent_key, ARGV[a + 2])
    if ttl > 0 then redis.call('EXPIRE', spent_key, ttl) end
  end
  a = a + 4
  redis.call('ZREMRANGEBYSCORE', held_key, '-inf', now)
  local held = 0
  for _, m in ipairs(redis.call('ZRANGE', held_key, 0, -1)) do
    held = held + tonumber(string.match(m, ':([^:]+)$'))
  end
  out[#out + 1] = tostring(spent)
  out[#out + 1] = tostring(held)
  if hard == '1' and spent + held >= amount and out[1] == '0' then out[1] = tostring(b) end
end
local nw = tonumber(ARGV[a])
local counts = {}
for w = 1, nw do
  local rpm_limit, tpm_limit = tonumber(ARGV[a + 2 * w - 1]), tonumber(ARGV[a + 2 * w])
  local requests = tonumber(redis.call('GET', KEYS[2 * nb + 2 * w - 1]) or '0')
  local tokens = tonumber(redis.call('GET', KEYS[2 * nb + 2 * w]) or '0')
  if out[1] == '0' and rpm_limit > 0 and requests >= rpm_limit then out[1] = tostring(1 - 2 * w) end
  if out[1] == '0' and tpm_limit > 0 and tokens >= tpm_limit then out[1] = tostring(-2 * w) end
  counts[2 * w - 1], counts[2 * w] = requests, tokens
end
if out[1] == '0' then
  for w = 1, nw do
    if tonumber(ARGV[a + 2 * w - 1]) > 0 then
      counts[2 * w - 1] = redis.call('INCR', KEYS[2 * nb + 2 * w - 1])
      redis.call('EXPIRE', KEYS[2 * nb + 2 * w - 1], 61)
    end
  end
  if reserve > 0 then
    for b = 1, nb do
      redis.call('ZADD', KEYS[2 * b], now + hold_ttl, member .. ':' .. ARGV[3])
      redis.call('EXPIRE', KEYS[2 * b], math.floor(hold_ttl) + 60)
    end
  end
end
for i = 1, 2 * nw do out[#out + 1] = tostring(counts[i]) end
return out
"""

PERIOD_SECONDS = {"daily": 86_400, "weekly": 7 * 86_400, "monthly": 31 * 86_400, "total": 0}


class SharedLimits:
    def __init__(self) -> None:
        self._client = None
        self._script = None
        self._loop = None
        self._tasks: set = set()

    def _connect(self):
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import redis.asyncio as redis

            self._client = redis.from_url(settings.REDIS_URL)
            self._script = self._client.register_script(ADMIT_LUA)
            self._loop = loop
        return self._client

    @staticmethod
    def _budget_keys(budget, now: float) -> tuple[str, str]:
        from .limits import period_start

        base = f"junction:budget:{budget.id}:{int(period_start(budget.period, now))}"
        return base + ":spent", base + ":held"

    async def admit(self, limits, budgets, key, reserve: float, now: float):
        """One round trip. Raises the 429 GatewayError; returns the Admission."""
        import secrets

        from .host_windows import WindowCounts
        from .limits import Admission, _refuse_or_warn, rate_verdict, rate_windows

        self._connect()
        minute = int(now // 60)
        keys, args = [], [repr(now), secrets.token_hex(8), repr(reserve),
                          repr(settings.GATEWAY_RESERVE_TTL_SECONDS), str(len(budgets))]
        for budget in budgets:
            keys.extend(self._budget_keys(budget, now))
            period = PERIOD_SECONDS.get(budget.period, 0)
            args += [repr(budget.amount), "1" if budget.hard else "0", repr(limits.spent(budget, now)),
                     str(period + 86_400 if period else 0)]
        windows = rate_windows(key)
        args.append(str(len(windows)))
        for scope, owner, rpm, tpm in windows:
            keys += [f"junction:rpm:{scope}:{owner}:{minute}", f"junction:tpm:{scope}:{owner}:{minute}"]
            args += [str(rpm), str(tpm)]
        raw = await self._script(keys=keys, args=args)
        out = [v.decode() if isinstance(v, bytes) else str(v) for v in raw]
        verdict = int(out[0])
        reset = 60 - now % 60
        found = out[1 + 2 * len(budgets):]
        counts = [WindowCounts(int(float(found[2 * w])), int(float(found[2 * w + 1])), reset, reset)
                  for w in range(len(windows))]
        headers = rate_verdict(windows, counts, -1 - verdict if verdict < 0 else -1)  # raises the 429
        warning = None
        for i, budget in enumerate(budgets):
            spent, held = float(out[1 + 2 * i]), float(out[2 + 2 * i])
            if verdict == i + 1 or (not budget.hard and spent + held >= budget.amount):
                warning = _refuse_or_warn(budget, spent, held)  # raises for the hard one
        return Admission(warning, reserve if budgets else 0.0, headers, shared=True,
                         request_id=args[1] + ":" + args[2])

    def settle(self, admission, budgets, key, cost: float, tokens: int) -> None:
        """Release the reservation and book cost and tokens: one pipeline, in the background
        (the response is already sent; nothing waits for it)."""
        task = asyncio.get_running_loop().create_task(self._settle(admission, budgets, key, cost, tokens),
                                                      context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, admission, budgets, key, cost: float, tokens: int) -> None:
        import time

        from .limits import rate_windows

        now = time.time()
        try:
            pipe = self._connect().pipeline(transaction=False)
            for budget in budgets:
                spent_key, held_key = self._budget_keys(budget, now)
                if admission.reserved:
                    pipe.zrem(held_key, admission.request_id)
                if cost:
                    pipe.incrbyfloat(spent_key, cost)
                    period = PERIOD_SECONDS.get(budget.period, 0)
                    if period:
                        pipe.expire(spent_key, period + 86_400)
            for scope, owner, _, tpm in rate_windows(key) if tokens else ():
                if tpm:
                    tpm_key = f"junction:tpm:{scope}:{owner}:{int(now // 60)}"
                    pipe.incrby(tpm_key, tokens)
                    pipe.expire(tpm_key, 61)
            await pipe.execute()
        except Exception as exc:  # the reservation expires on its own; the database has the spend
            log.warning("shared settle failed: %s", type(exc).__name__)

