"""Budgets (USD per user or key and period) and per-key RPM/TPM limits, enforced
before a request is forwarded, from memory.

Spend = what the database holds for the period (read when the config snapshot is
built and again every GATEWAY_BUDGET_REFRESH_SECONDS) + what this process booked
that the database did not hold yet (pruned by the usage writer's flush times, so
nothing counts twice). Exact in one process; across processes sharing a database,
another process's spend counts here within one flush window plus one refresh
interval, so a hard budget can be overshot by about what they spend in that time.
RPM/TPM windows are per process: with N processes the effective limit is up to N×.
"""

from __future__ import annotations

import asyncio
import calendar
import contextvars
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from providers.codecs.errors import GatewayError
from routing.table import ConfigSnapshot, KeyInfo

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
    cutoff: float = 0.0  # the database held every record this process settled before this


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
        self.entries: deque[tuple[float, float]] = deque()  # (when, cost)
        self.total = 0.0

    def prune(self, cutoff: float) -> None:
        """Drop what the database holds now: everything settled before `cutoff`."""
        entries = self.entries
        while entries and entries[0][0] < cutoff:
            self.total -= entries.popleft()[1]
        if not entries:
            self.total = 0.0  # no float drift left behind


class Limits:
    def __init__(self, recorder=None) -> None:
        self._recorder = recorder  # gateway.usage.UsageRecorder: its flush times prune the ledgers
        self._seeds: dict[int, tuple[float, float]] = {}  # budget id → (period start, spent in the database)
        self._ledgers: dict[int, _Ledger] = {}
        self._version: object = None
        self._requests: dict[int, deque[float]] = {}
        self._tokens: dict[int, deque[tuple[float, int]]] = {}
        self._refresher: asyncio.Task | None = None

    def _budgets(self, snapshot: ConfigSnapshot, key: KeyInfo) -> list[BudgetInfo]:
        if not snapshot.budgets:
            return []
        if snapshot.version != self._version:  # a rebuilt snapshot carries fresh database totals
            self._version = snapshot.version
            cutoff = 0.0
            for budgets in snapshot.budgets.values():
                for b in budgets:
                    self._seeds[b.id] = (b.period_start, b.spent_at_build)
                    cutoff = b.cutoff
            for ledger in self._ledgers.values():
                ledger.prune(cutoff)
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
                cutoff = recorder.flushed_before if recorder is not None else 0.0
                fresh = await asyncio.to_thread(_database_spend)
            except Exception as exc:  # database briefly unavailable: keep the last totals
                log.warning("budget refresh failed: %s", type(exc).__name__)
                continue
            self._seeds.update(fresh)
            for ledger in self._ledgers.values():
                ledger.prune(cutoff)

    def admit(self, snapshot: ConfigSnapshot, key: KeyInfo, now: float | None = None) -> str | None:
        """Raise a 429 GatewayError if a hard budget is spent or a rate limit is reached;
        return a warning for the response headers when a soft budget is spent."""
        now = time.time() if now is None else now
        warning = None
        for budget in self._budgets(snapshot, key):
            spent = self.spent(budget, now)
            if spent >= budget.amount:
                text = (f"{budget.scope.capitalize()} budget of ${budget.amount:g} "
                        f"({budget.period}) is spent (${spent:.4f}).")
                if budget.hard:
                    raise GatewayError("rate_limit", text + " Ask an admin to raise it.", 429,
                                       code="insufficient_quota")
                warning = text
        if key.id is not None and key.rpm_limit:
            window = self._window(self._requests, key.id, now)
            if len(window) >= key.rpm_limit:
                raise GatewayError("rate_limit", f"Rate limit of {key.rpm_limit} requests per minute reached "
                                                 "for this key.", 429,
                                   retry_after=max(1.0, window[0] + 60 - now),
                                   code="rate_limit_exceeded")
            window.append(now)
        if key.id is not None and key.tpm_limit:
            tokens = self._window(self._tokens, key.id, now)
            if sum(n for _, n in tokens) >= key.tpm_limit:
                raise GatewayError("rate_limit", f"Rate limit of {key.tpm_limit} tokens per minute reached "
                                                 "for this key.", 429,
                                   retry_after=max(1.0, tokens[0][0] + 60 - now),
                                   code="rate_limit_exceeded")
        return warning

    @staticmethod
    def _window(table: dict, key_id: int, now: float) -> deque:
        window = table.get(key_id)
        if window is None:
            window = table[key_id] = deque()
        while window and (window[0] if isinstance(window[0], float) else window[0][0]) <= now - 60:
            window.popleft()
        return window

    def settle(self, snapshot: ConfigSnapshot, key: KeyInfo, cost: float, tokens: int,
               now: float | None = None) -> None:
        """Book a finished request's cost and tokens (before its usage record is queued)."""
        now = time.time() if now is None else now
        if cost:
            for budget in self._budgets(snapshot, key):
                start = period_start(budget.period, now)
                ledger = self._ledgers.get(budget.id)
                if ledger is None or ledger.period != start:
                    ledger = self._ledgers[budget.id] = _Ledger(start)
                ledger.entries.append((now, cost))
                ledger.total += cost
        if tokens and key.id is not None and key.tpm_limit:
            self._window(self._tokens, key.id, now).append((now, tokens))


def build_budgets(now: float | None = None,
                  cutoff: float = 0.0) -> dict[tuple[str, int], tuple[BudgetInfo, ...]]:
    """For gateway.snapshot.build_snapshot (synchronous, one query per budget). `cutoff`:
    the usage recorder's flushed_before, read before the query."""
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


def _database_spend() -> dict[int, tuple[float, float]]:
    """budget id → (period start, spent in the database): for the periodic refresh."""
    from django.db import close_old_connections

    try:
        return {b.id: (b.period_start, b.spent_at_build)
                for budgets in build_budgets().values() for b in budgets}
    finally:
        close_old_connections()
