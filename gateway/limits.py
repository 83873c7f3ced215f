"""Budgets (USD per user or key and period) and per-key RPM/TPM limits, enforced
before a request is forwarded, from memory.

Spend = what the database held for the period when the config snapshot was built
+ what this process recorded since. Exact for the embedded profile (one process);
with several processes each one learns the others' spend at its next snapshot
rebuild (any config save), so a hard budget can be overshot by what the other
processes spent in between. Records still in the usage queue when a snapshot is
rebuilt are missed until the next rebuild (at most one flush window).
RPM/TPM windows are per process: with N processes the effective limit is up to N×.
"""

from __future__ import annotations

import calendar
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from providers.codecs.errors import GatewayError
from routing.table import ConfigSnapshot, KeyInfo


@dataclass(frozen=True, slots=True)
class BudgetInfo:
    id: int
    scope: str  # "user" | "key"
    owner_id: int
    amount: float
    period: str  # daily | weekly | monthly | total
    hard: bool
    period_start: float  # epoch seconds, the period the seed belongs to
    spent_at_build: float


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


class Limits:
    def __init__(self) -> None:
        self._spent: dict[int, tuple[float, float]] = {}  # budget id → (period start, spent since build)
        self._version: object = None
        self._requests: dict[int, deque[float]] = {}
        self._tokens: dict[int, deque[tuple[float, int]]] = {}

    def _budgets(self, snapshot: ConfigSnapshot, key: KeyInfo) -> list[BudgetInfo]:
        if not snapshot.budgets:
            return []
        if snapshot.version != self._version:  # a rebuilt snapshot carries fresh seeds
            self._spent.clear()
            self._version = snapshot.version
        return [*snapshot.budgets.get(("key", key.id), ()), *snapshot.budgets.get(("user", key.user_id), ())]

    def spent(self, budget: BudgetInfo, now: float) -> float:
        start = period_start(budget.period, now)
        base = budget.spent_at_build if budget.period_start == start else 0.0
        since_start, since = self._spent.get(budget.id, (start, 0.0))
        return base + (since if since_start == start else 0.0)

    def admit(self, snapshot: ConfigSnapshot, key: KeyInfo, now: float | None = None) -> str | None:
        """Raise a 429 GatewayError if a hard budget is spent or a rate limit is reached;
        return a warning for the response headers when a soft budget is spent."""
        now = time.time() if now is None else now
        warning = None
        for budget in self._budgets(snapshot, key):
            spent = self.spent(budget, now)
            if spent >= budget.amount:
                text = (f"{'Key' if budget.scope == 'key' else 'User'} budget of ${budget.amount:g} "
                        f"({budget.period}) is spent (${spent:.4f}).")
                if budget.hard:
                    raise GatewayError("rate_limit", text + " Ask an admin to raise it.", 429,
                                       code="insufficient_quota")
                warning = text
        if key.id is not None and key.rpm_limit:
            window = self._window(self._requests, key.id, now)
            if len(window) >= key.rpm_limit:
                raise GatewayError("rate_limit", f"Rate limit of {key.rpm_limit} requests per minute reached for "
                                                 "this key.", 429, retry_after=max(1.0, window[0] + 60 - now),
                                   code="rate_limit_exceeded")
            window.append(now)
        if key.id is not None and key.tpm_limit:
            tokens = self._window(self._tokens, key.id, now)
            if sum(n for _, n in tokens) >= key.tpm_limit:
                raise GatewayError("rate_limit", f"Rate limit of {key.tpm_limit} tokens per minute reached for "
                                                 "this key.", 429, retry_after=max(1.0, tokens[0][0] + 60 - now),
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
        """Book a finished request's cost and tokens."""
        now = time.time() if now is None else now
        if cost:
            for budget in self._budgets(snapshot, key):
                start = period_start(budget.period, now)
                since_start, since = self._spent.get(budget.id, (start, 0.0))
                self._spent[budget.id] = (start, (since if since_start == start else 0.0) + cost)
        if tokens and key.id is not None and key.tpm_limit:
            self._window(self._tokens, key.id, now).append((now, tokens))


LIMITS = Limits()


def build_budgets(now: float | None = None) -> dict[tuple[str, int], tuple[BudgetInfo, ...]]:
    """For gateway.snapshot.build_snapshot (synchronous, one query per budget)."""
    from django.db.models import Sum

    from .models import Budget, UsageRecord

    now = time.time() if now is None else now
    out: dict[tuple[str, int], list[BudgetInfo]] = {}
    for b in Budget.objects.all():
        start = period_start(b.period, now)
        records = UsageRecord.objects.filter(created_at__gte=datetime.fromtimestamp(start, tz=timezone.utc))
        records = records.filter(key_id=b.key_id) if b.key_id else records.filter(user_id=b.user_id)
        spent = float(records.aggregate(total=Sum("cost_usd"))["total"] or 0)
        scope, owner = ("key", b.key_id) if b.key_id else ("user", b.user_id)
        out.setdefault((scope, owner), []).append(
            BudgetInfo(b.id, scope, owner, float(b.amount_usd), b.period, b.hard, start, spent))
    return {k: tuple(v) for k, v in out.items()}
