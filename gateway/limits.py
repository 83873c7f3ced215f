"""Budgets (USD per user or key and period) and RPM/TPM limits per key and per user,
enforced before a request is forwarded, from memory.

Spend = what the database holds for the period (read when the config snapshot is
built and again every GATEWAY_BUDGET_REFRESH_SECONDS) + what this process booked
that the database did not hold yet (pruned by the usage writer's flush times, so
nothing counts twice). Exact in one process; across processes sharing a database,
another process's spend counts here within one flush window plus one refresh
interval, so a hard budget can be overshot by about what they spend in that time.
RPM/TPM windows (sliding, 60 s): a key's and its user's, each checked, the tightest
reported in the x-ratelimit-* headers. Where they live: in this process's memory (one
process); in a mapped file in the data dir shared by the workers of `serve --workers N`
without Redis (gateway.host_windows, to the second); in Redis with REDIS_URL
(gateway.cluster, per calendar minute), shared by every process.
"""

from __future__ import annotations

import asyncio
import calendar
import contextvars
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from providers.codecs.errors import GatewayError
from routing.table import ConfigSnapshot, KeyInfo

from .host_windows import FILE_NAME, HostWindows, WindowCounts, owner_id

log = logging.getLogger("junction.limits")


@dataclass(frozen=True, slots=True)
class BudgetInfo:
    id: int
    scope: str  # "user" | "key" | "team"
    owner_id: int
    amount: float
    period: str  # daily | weekly | monthly | total
    hard: bool
    period_start: float  # epoch seconds, the period the seed belongs to
    spent_at_build: float
    cutoff: int = 0  # the database held this many of this process's first records (UsageRecorder.recorded)


def period_start(period: str, now: float) -> float:
    """Start (epoch seconds, UTC) of the budget period containing `now`."""
    if period == "total":
        return 0.0
    day = datetime.fromtimestamp(now, tz=timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "weekly":
        day -= timedelta(days=day.weekday())
    elif period == "monthly":
        day = day.replace(day=1)
    return float(calendar.timegm(day.timetuple()))


class _Ledger:
    """This process's spend on one budget that the database may not hold yet."""

    __slots__ = ("period", "entries", "total")

    def __init__(self, period: float) -> None:
        self.period = period
        # (how many records this process had recorded before this one, cost)
        self.entries: deque[tuple[int, float]] = deque()
        self.total = 0.0

    def prune(self, cutoff: int) -> None:
        """Drop what the database holds now: this process's first `cutoff` records."""
        entries = self.entries
        while entries and entries[0][0] < cutoff:
            self.total -= entries.popleft()[1]
        if not entries:
            self.total = 0.0  # no float drift left behind


class _TokenWindow:
    """Tokens booked in the last 60 s, with their running total (no sum per admission)."""

    __slots__ = ("entries", "total")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int]] = deque()  # (when, tokens)
        self.total = 0

    def expire(self, now: float) -> None:
        entries = self.entries
        while entries and entries[0][0] <= now - 60:
            self.total -= entries.popleft()[1]

    def add(self, now: float, tokens: int) -> None:
        self.entries.append((now, tokens))
        self.total += tokens


class Limits:
    def __init__(self, recorder=None) -> None:
        self._recorder = recorder  # gateway.usage.UsageRecorder: its flush times prune the ledgers
        self._seeds: dict[int, tuple[float, float]] = {}  # budget id → (period start, spent in the database)
        self._cutoff = 0  # the database held this many of this process's records when _seeds were read
        self._ledgers: dict[int, _Ledger] = {}
        self._version: object = None
        self._requests: dict[tuple[str, int], deque[float]] = {}  # (scope, owner) → request times
        self._tokens: dict[tuple[str, int], _TokenWindow] = {}
        self._refresher: asyncio.Task | None = None
        self._held: dict[int, float] = {}  # budget id → USD reserved by requests in flight here
        self._shared = None  # gateway.cluster.SharedLimits, made on first use when REDIS_URL is set
        self._host: HostWindows | None | bool = None  # the workers' shared windows (False: not used)

    def _budgets(self, snapshot: ConfigSnapshot, key: KeyInfo) -> list[BudgetInfo]:
        if not snapshot.budgets:
            return []
        if snapshot.version != self._version:  # a rebuilt snapshot carries fresh database totals
            self._version = snapshot.version
            self._reseed({b.id: (b.period_start, b.spent_at_build)
                          for budgets in snapshot.budgets.values() for b in budgets},
                         next(iter(snapshot.budgets.values()))[0].cutoff)
        budgets = [*snapshot.budgets.get(("key", key.id), ()),
                   *snapshot.budgets.get(("user", key.user_id), ())]
        for team in key.team_ids:  # team budgets count for every member's keys
            budgets.extend(snapshot.budgets.get(("team", team), ()))
        return budgets

    def hard_budget_applies(self, snapshot: ConfigSnapshot, key: KeyInfo) -> bool:
        return any(b.hard for b in self._budgets(snapshot, key))

    def spent(self, budget: BudgetInfo, now: float) -> float:
        start = period_start(budget.period, now)
        seed_start, seed = self._seeds.get(budget.id, (budget.period_start, budget.spent_at_build))
        ledger = self._ledgers.get(budget.id)
        booked = ledger.total if ledger and ledger.period == start else 0.0
        return (seed if seed_start == start else 0.0) + booked

    def start(self) -> None:
        """Re-read budget spend from the database every GATEWAY_BUDGET_REFRESH_SECONDS
        once budgets exist, so spend booked by other processes counts here too."""
        if self._refresher is None:
            # A fresh context: the loop must not inherit the caller's state.
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop(),
                                                                     context=contextvars.Context())

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None

    async def _refresh_loop(self) -> None:
        from django.conf import settings

        recorder = self._recorder
        while True:
            await asyncio.sleep(settings.GATEWAY_BUDGET_REFRESH_SECONDS)
            if not self._seeds:  # no budget seen yet: nothing to refresh
                continue
            try:
                if recorder is not None:
                    cutoff, fresh = await asyncio.to_thread(recorder.consistent, _database_spend)
                else:
                    cutoff, fresh = await asyncio.to_thread(_database_spend, 0)
            except Exception as exc:  # database briefly unavailable: keep the last totals
                log.warning("budget refresh failed: %s", type(exc).__name__)
                continue
            self._reseed(fresh, cutoff)

    def _reseed(self, seeds: dict[int, tuple[float, float]], cutoff: int) -> None:
        """New database totals, read when the database held this process's first `cutoff`
        records: those leave the ledgers. Totals older than the ones in use (a snapshot built
        while a refresh ran) are ignored, else spend would be undercounted."""
        if cutoff < self._cutoff:
            return
        self._cutoff = cutoff
        self._seeds.update(seeds)
        for ledger in self._ledgers.values():
            ledger.prune(cutoff)

    def budgets_for(self, snapshot: ConfigSnapshot, key: KeyInfo) -> list[BudgetInfo]:
        return self._budgets(snapshot, key) if snapshot.budgets else []

    def applies(self, snapshot: ConfigSnapshot, key: KeyInfo) -> bool:
        """Whether admission has anything to check for this key (else it costs nothing)."""
        return bool(rate_windows(key) or self.budgets_for(snapshot, key))

    def admit(self, snapshot: ConfigSnapshot, key: KeyInfo, now: float | None = None,
              reserve: float = 0.0) -> str | None:
        """Local admission (one host): see admit_local; returns the soft-budget warning."""
        return self.admit_local(snapshot, key, reserve, now).warning

    def admit_local(self, snapshot: ConfigSnapshot, key: KeyInfo, reserve: float = 0.0,
                    now: float | None = None) -> Admission:
        """Raise a 429 GatewayError if a hard budget is spent (counting what requests in
        flight have reserved) or a rate limit is reached; else reserve `reserve` USD on
        every budget of the key and its user until settle()."""
        now = time.time() if now is None else now
        warning = None
        budgets = self.budgets_for(snapshot, key)
        for budget in budgets:
            spent = self.spent(budget, now)
            held = self._held.get(budget.id, 0.0)
            if spent + held >= budget.amount:
                warning = _refuse_or_warn(budget, spent, held)
        windows = rate_windows(key)
        headers = self.admit_windows(windows, now) if windows else {}
        if reserve:
            for budget in budgets:
                self._held[budget.id] = self._held.get(budget.id, 0.0) + reserve
        return Admission(warning, reserve if budgets else 0.0, headers)

    async def admit_request(self, snapshot: ConfigSnapshot, key: KeyInfo, reserve) -> Admission:
        """Admission for the proxy. `reserve()` gives the request's maximum cost; it is only
        called when a budget applies. With REDIS_URL: one Lua script round trip shared by all
        processes; if Redis fails, the local path for this request."""
        budgets = self.budgets_for(snapshot, key)
        amount = reserve() if budgets else 0.0
        if not budgets and not rate_windows(key):
            return NO_LIMITS
        shared = self.shared()
        if shared is not None:
            try:
                admission = await shared.admit(self, budgets, key, amount, time.time())
            except GatewayError:
                raise
            except Exception as exc:  # Redis down: this host's view for now
                log.warning("shared admission failed (%s); admitting locally", type(exc).__name__)
            else:
                return admission
        return self.admit_local(snapshot, key, amount)

    def shared(self):
        """Budgets and RPM/TPM shared through Redis (REDIS_URL), else None."""
        from django.conf import settings

        if self._shared is None and settings.REDIS_URL:
            from .cluster import SharedLimits

            self._shared = SharedLimits()
        return self._shared

    def host(self) -> HostWindows | None:
        """The windows shared by the workers of this host (serve --workers N, no REDIS_URL)."""
        if self._host is None:
            from django.conf import settings

            shared = settings.GATEWAY_WORKERS > 1 and not settings.REDIS_URL
            self._host = HostWindows(settings.DATA_DIR / FILE_NAME) if shared else False
        return self._host or None

    def admit_windows(self, windows: list[tuple[str, int, int, int]], now: float) -> dict[str, str]:
        """Check the key's and the user's windows; count the request in each. Returns the
        x-ratelimit-* headers; raises the 429 naming the limit reached."""
        host = self.host()
        if host is not None:
            try:
                refused, counts = host.admit([(owner_id(scope, owner), rpm, tpm)
                                              for scope, owner, rpm, tpm in windows], now)
            except OSError as exc:  # the data dir failed us: this worker's own windows for now
                log.warning("host rate windows unavailable (%s); counting in this worker", exc)
                host = None
        if host is None:
            refused, counts = self._admit_in_memory(windows, now)
        return rate_verdict(windows, counts, refused)

    def _admit_in_memory(self, windows, now: float) -> tuple[int, list[WindowCounts]]:
        counts, refused = [], -1
        for i, (scope, owner, rpm, tpm) in enumerate(windows):
            requests = self._window(self._requests, (scope, owner), now) if rpm else ()
            tokens = self._token_window((scope, owner), now) if tpm else None
            booked = tokens.entries if tokens is not None else ()
            counts.append(WindowCounts(len(requests), tokens.total if tokens is not None else 0,
                                       requests[0] + 60 - now if requests else 60.0,
                                       booked[0][0] + 60 - now if booked else 60.0))
            if refused < 0 and rpm and counts[i].requests >= rpm:
                refused = 2 * i
            elif refused < 0 and tpm and counts[i].tokens >= tpm:
                refused = 2 * i + 1
        if refused < 0:
            for (scope, owner, rpm, _), c in zip(windows, counts):
                if rpm:
                    self._requests[(scope, owner)].append(now)
                    c.requests += 1
        return refused, counts

    @staticmethod
    def _window(table: dict, owner: tuple[str, int], now: float) -> deque:
        window = table.get(owner)
        if window is None:
            window = table[owner] = deque()
        while window and window[0] <= now - 60:
            window.popleft()
        return window

    def _token_window(self, owner: tuple[str, int], now: float) -> _TokenWindow:
        window = self._tokens.get(owner)
        if window is None:
            window = self._tokens[owner] = _TokenWindow()
        window.expire(now)
        return window

    def settle(self, snapshot: ConfigSnapshot, key: KeyInfo, cost: float, tokens: int,
               now: float | None = None, admission: Admission | None = None) -> None:
        """Book a finished request's cost and tokens (before its usage record is queued)
        and release what its admission reserved."""
        now = time.time() if now is None else now
        budgets = self.budgets_for(snapshot, key)
        if admission is not None and admission.reserved and not admission.shared:
            for budget in budgets:
                held = self._held.get(budget.id, 0.0) - admission.reserved
                self._held[budget.id] = held if held > 1e-12 else 0.0
        if cost:
            for budget in budgets:
                start = period_start(budget.period, now)
                ledger = self._ledgers.get(budget.id)
                if ledger is None or ledger.period != start:
                    ledger = self._ledgers[budget.id] = _Ledger(start)
                ledger.entries.append((self._recorder.recorded if self._recorder is not None else 0, cost))
                ledger.total += cost
        if tokens:
            self._book_tokens(key, tokens, now)
        if admission is not None and admission.shared:
            self.shared().settle(admission, budgets, key, cost, tokens)

    def _book_tokens(self, key: KeyInfo, tokens: int, now: float) -> None:
        windows = [(scope, owner) for scope, owner, _, tpm in rate_windows(key) if tpm]
        if not windows:
            return
        host = self.host()
        if host is not None:
            try:
                host.add_tokens([owner_id(scope, owner) for scope, owner in windows], tokens, now)
                return
            except OSError as exc:
                log.warning("host rate windows unavailable (%s); counting in this worker", exc)
        for owner in windows:
            self._token_window(owner, now).add(now, tokens)


def rate_windows(key: KeyInfo) -> list[tuple[str, int, int, int]]:
    """(scope, owner id, RPM limit, TPM limit; 0: none) of the key and of its user, in the
    order admission checks them."""
    windows = []
    if key.id is not None and (key.rpm_limit or key.tpm_limit):
        windows.append(("key", key.id, key.rpm_limit or 0, key.tpm_limit or 0))
    if key.user_id is not None and (key.user_rpm_limit or key.user_tpm_limit):
        windows.append(("user", key.user_id, key.user_rpm_limit or 0, key.user_tpm_limit or 0))
    return windows


def rate_verdict(windows: list[tuple[str, int, int, int]], counts: list[WindowCounts],
                 refused: int) -> dict[str, str]:
    """The x-ratelimit-* headers (per kind, the window with the least remaining, as a
    provider reports its tightest limit); raises the 429 for the refusing limit
    (2·i: window i's requests, 2·i + 1: its tokens, -1: none)."""
    headers = {}
    for kind in ("requests", "tokens"):
        tightest = None
        for (_, _, rpm, tpm), c in zip(windows, counts):
            limit, used, reset = ((rpm, c.requests, c.requests_reset) if kind == "requests"
                                  else (tpm, c.tokens, c.tokens_reset))
            if limit:
                if tightest is None or limit - used < tightest[1]:
                    tightest = (limit, limit - used, reset)
        if tightest is not None:
            headers |= _headers(kind, *tightest)
    if refused >= 0:
        scope, _, rpm, tpm = windows[refused // 2]
        c = counts[refused // 2]
        whose = "this key" if scope == "key" else "this key's user (all of the user's keys)"
        if refused % 2 == 0:
            raise _rate_limited(f"Rate limit of {rpm} requests per minute reached for {whose}.",
                                c.requests_reset, headers)
        raise _rate_limited(f"Rate limit of {tpm} tokens per minute reached for {whose}.", c.tokens_reset,
                            headers)
    return headers


@dataclass(slots=True)
class Admission:
    warning: str | None = None
    reserved: float = 0.0  # USD held on each of the key's budgets until settle
    headers: dict = field(default_factory=dict)  # x-ratelimit-*
    shared: bool = False  # admitted through Redis: settle there too
    request_id: str = ""


NO_LIMITS = Admission()


def _refuse_or_warn(budget: BudgetInfo, spent: float, held: float) -> str:
    text = (f"{budget.scope.capitalize()} budget of ${budget.amount:g} "
            f"({budget.period}) is spent (${spent:.4f}"
            + (f", ${held:.4f} reserved by requests in flight" if held else "") + ").")
    if budget.hard:
        raise GatewayError("rate_limit", text + " Ask an admin to raise it.", 429, code="insufficient_quota")
    return text


def _rate_limited(message: str, reset: float, headers: dict) -> GatewayError:
    error = GatewayError("rate_limit", message, 429, retry_after=max(1.0, reset), code="rate_limit_exceeded")
    error.headers = headers
    return error


def _duration(seconds: float) -> str:
    """OpenAI's reset format: "1s", "6m0s", "350ms"."""
    if seconds < 1:
        return f"{max(int(seconds * 1000), 1)}ms"
    seconds = int(seconds + 0.999)
    return f"{seconds // 60}m{seconds % 60}s" if seconds >= 60 else f"{seconds}s"


def _headers(kind: str, limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {f"x-ratelimit-limit-{kind}": str(limit), f"x-ratelimit-remaining-{kind}": str(max(remaining, 0)),
            f"x-ratelimit-reset-{kind}": _duration(max(reset, 0.0))}


def build_budgets(now: float | None = None,
                  cutoff: int = 0) -> dict[tuple[str, int], tuple[BudgetInfo, ...]]:
    """For gateway.snapshot.build_snapshot (synchronous, one query per budget). `cutoff`:
    how many of this process's records the database holds (UsageRecorder.consistent)."""
    from django.db.models import Sum

    from .models import Budget, UsageRecord

    now = time.time() if now is None else now
    out: dict[tuple[str, int], list[BudgetInfo]] = {}
    for b in Budget.objects.all():
        start = period_start(b.period, now)
        records = UsageRecord.objects.filter(created_at__gte=datetime.fromtimestamp(start, tz=timezone.utc))
        scope, owner = b.scope
        if scope == "team":  # the team's current members (join through auth_user_groups)
            records = records.filter(user__groups=owner)
        else:
            records = records.filter(**{f"{scope}_id": owner})
        spent = float(records.aggregate(total=Sum("cost_usd"))["total"] or 0)
        out.setdefault((scope, owner), []).append(
            BudgetInfo(b.id, scope, owner, float(b.amount_usd), b.period, b.hard, start, spent, cutoff))
    return {k: tuple(v) for k, v in out.items()}


def _database_spend(cutoff: int) -> tuple[int, dict[int, tuple[float, float]]]:
    """(cutoff, budget id → (period start, spent in the database)): for the periodic refresh."""
    from django.db import close_old_connections

    try:
        return cutoff, {b.id: (b.period_start, b.spent_at_build)
                        for budgets in build_budgets().values() for b in budgets}
    finally:
        close_old_connections()
