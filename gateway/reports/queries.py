"""Report reads: rollups for the rolled-up past, raw UsageRecords since the watermark.

Every report number comes from `aggregate(filters, group, bucket)`, which splits the
range into whole days (DailyUsage), hours (HourlyUsage) and the raw tail (UsageRecord)
and sums the parts: the same numbers as a scan of the raw rows, at a fraction of the cost.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone as dt_timezone

from django.contrib.auth import get_user_model
from django.db.models import FloatField, Q, Sum
from django.db.models.functions import TruncDate, TruncHour

from .. import rollups
from ..models import Budget, DailyUsage, HourlyUsage, SessionUsage, UsageRecord

MEASURES = rollups.MEASURES
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Filters:
    start: datetime
    end: datetime
    user: int | None = None
    team: int | None = None
    key: int | None = None
    route: str = ""
    provider: str = ""
    model: str = ""
    status: str = ""  # "ok", "error" or a status code
    extra: dict = field(default_factory=dict)

    def previous(self) -> "Filters":
        span = self.end - self.start
        return replace(self, start=self.start - span, end=self.start)

    def q(self, time_field: str | None = None) -> Q:
        q = Q()
        if self.user:
            q &= Q(user_id=self.user)
        if self.team:
            q &= Q(user_id__in=get_user_model().objects.filter(groups=self.team).values("id"))
        if self.key:
            q &= Q(key_id=self.key)
        for name in ("route", "provider", "model"):
            if getattr(self, name):
                q &= Q(**{name: getattr(self, name)})
        if self.status == "ok":
            q &= Q(status__lt=400)
        elif self.status == "error":
            q &= Q(status__gte=400)
        elif self.status.isdigit():
            q &= Q(status=int(self.status))
        return q

    def dimensions(self) -> set[str]:
        """The rollup dimensions these filters read."""
        names = {"user_id"} if self.user or self.team else set()
        names |= {"key_id"} if self.key else set()
        return names | {name for name in ("route", "provider", "model", "status") if getattr(self, name)}


def daily_table(dims: set[str]):
    """The smallest daily rollup holding every dimension in `dims`."""
    for model, has in rollups.COARSE.items():
        if dims <= set(has):
            return model
    return DailyUsage


def _parts(f: Filters, bucket: str | None, group: tuple[str, ...] = ()):
    """(model, time field, lower, upper) segments covering [start, end)."""
    through = rollups.watermark() or f.start
    rolled_end = min(f.end, through)
    start = rollups.floor_hour(f.start)
    parts = []
    if rolled_end > start:
        first_day = (start + DAY - timedelta(microseconds=1)).date() if start.hour else start.date()
        last_day = rolled_end.date()  # exclusive: days before the one `rolled_end` falls in are whole
        if bucket != "hour" and first_day < last_day:
            parts.append((daily_table(set(group) | f.dimensions()), "day", first_day, last_day))
            day_lo, day_hi = rollups.day_start(first_day), rollups.day_start(last_day)
            if start < day_lo:
                parts.append((HourlyUsage, "hour", start, day_lo))
            if day_hi < rolled_end:
                parts.append((HourlyUsage, "hour", day_hi, rolled_end))
        else:
            parts.append((HourlyUsage, "hour", start, rolled_end))
    parts.append((UsageRecord, "created_at", max(start, through), f.end))
    return parts


def aggregate(f: Filters, group: tuple[str, ...] = (), bucket: str | None = None,
              measures: tuple[str, ...] = MEASURES) -> list[dict]:
    """Sums of `measures` (every one by default) grouped by `group` (rollup dimension names:
    user_id, key_id, route, provider, model, status) and optionally by "hour" or "day" (key
    `bucket`). Fewer measures cost less: thousands of rows × 14 measures is most of the time."""
    merged: dict[tuple, dict] = {}
    for model, time_field, lo, hi in _parts(f, bucket, group):
        if lo >= hi:
            continue
        qs = model.objects.filter(**{f"{time_field}__gte": lo, f"{time_field}__lt": hi}).filter(f.q())
        names = list(group)
        if bucket:
            if model is UsageRecord:
                trunc = TruncHour("created_at") if bucket == "hour" else TruncDate("created_at")
            elif model is HourlyUsage:
                trunc = TruncHour("hour") if bucket == "hour" else TruncDate("hour")
            else:
                trunc = None
            if trunc is not None:
                qs = qs.annotate(bucket=trunc)
                names.append("bucket")
            else:
                names.append("day")
        if model is UsageRecord:
            qs = rollups.with_first_attempt(rollups.billable(qs))
            sums = rollups.raw_measures()
        else:
            sums = rollups.rollup_measures()
        sums = {m: sums[m] for m in measures}
        # No grouping: one aggregate row (values() without names would group by every column).
        rows = qs.values(*names).annotate(**sums).order_by() if names else [qs.aggregate(**sums)]
        for row in rows:
            if "day" in row and "bucket" not in row:
                row["bucket"] = row.pop("day")
            ident = tuple(row.get(n) for n in group) + ((_bucket_key(row["bucket"]),) if bucket else ())
            into = merged.get(ident)
            if into is None:
                merged[ident] = into = {n: row.get(n) for n in group}
                if bucket:
                    into["bucket"] = _bucket_key(row["bucket"])
                for m in measures:
                    into[m] = 0
            for m in measures:
                into[m] += row[m] or 0
    rows = list(merged.values())
    floats = [m for m in (*rollups.MONEY, "latency_ms") if m in measures]
    for row in rows:
        for name in floats:
            row[name] = float(row[name])
    return rows


def _bucket_key(value):
    if isinstance(value, datetime):
        return value.astimezone(dt_timezone.utc).replace(tzinfo=dt_timezone.utc)
    return value


def totals(f: Filters) -> dict:
    rows = aggregate(f)
    return rows[0] if rows else {m: 0 for m in MEASURES} | {m: 0.0 for m in (*rollups.MONEY, "latency_ms")}


def top_sessions(f: Filters, limit: int = 10) -> list[dict]:
    """Sessions by cost: SessionUsage for whole days, raw rows for the hours around them.
    Honours the user, team and key filters (sessions are not split by route or model).
    Exact without reading every session: the SQL top `limit` of the whole days, plus every
    session of the raw edges with its whole-day totals, hold the true top `limit`."""
    from django.db.models import Count, Max

    through = rollups.watermark() or f.start
    person = Filters(f.start, f.end, user=f.user, team=f.team, key=f.key)
    first_day = (f.start + DAY - timedelta(microseconds=1)).date()
    last_day = min(f.end, through).date()
    merged: dict[str, dict] = {}

    counts = ("requests", "prompt_tokens", "cached_tokens", "cache_hits")
    money = rollups.MONEY

    def add(rows):
        for row in rows:
            into = merged.setdefault(
                row["session_id"],
                {
                    "session_id": row["session_id"],
                    "user_id": row["user_id"],
                    **{name: 0 for name in counts},
                    **{name: 0.0 for name in money},
                    "last_at": row["last_at"],
                },
            )
            for name in counts:
                into[name] += row[name] or 0
            for name in money:
                into[name] += float(row[name] or 0)
            into["last_at"] = max(into["last_at"], row["last_at"])

    as_float = {name: Sum(name, output_field=FloatField()) for name in money}
    raw_sum = dict(
        user_id=Max("user_id"),
        requests=Count("id"),
        prompt_tokens=Sum("prompt_tokens"),
        cached_tokens=Sum("cached_tokens"),
        cache_hits=Count("id", filter=Q(cache_hit=True)),
        **as_float,
        last_at=Max("created_at"),
    )
    day_sum = dict(
        user_id=Max("user_id"),
        **{name: Sum(name) for name in counts},
        **as_float,
        last_at=Max("last_at"),
    )
    # SessionUsage of the watermark's own day holds its sessions up to the watermark: a range
    # running to the watermark or past it reads that day from there too (not ~20 h of raw rows).
    to_now = f.end >= through and first_day <= last_day
    last_whole = last_day + DAY if to_now else last_day
    edges = [(f.start, f.end)]
    days = None
    if first_day < last_whole:
        days = SessionUsage.objects.filter(day__gte=first_day, day__lt=last_whole).filter(person.q())
        edges = [(f.start, rollups.day_start(first_day)),
                 (through if to_now else rollups.day_start(last_day), f.end)]
    edge_rows = []
    for lo, hi in edges:
        if lo < hi:
            edge_rows += list(
                rollups.billable(UsageRecord.objects.filter(created_at__gte=lo, created_at__lt=hi))
                .filter(person.q())
                .exclude(session_id="")
                .values("session_id")
                .annotate(**raw_sum)
                .order_by()
            )
    add(edge_rows)
    if days is not None:
        # The top by cost alone (one sum per session), then every measure of those and of
        # the edges' sessions (their whole-day part too).
        top = days.values("session_id").annotate(cost=Sum("cost_usd")).order_by("-cost")[:limit]
        top_ids = [row["session_id"] for row in top]
        edge_ids = list(set(top_ids) | {row["session_id"] for row in edge_rows})
        for start in range(0, len(edge_ids), 500):
            add(
                days.filter(session_id__in=edge_ids[start : start + 500])
                .values("session_id")
                .annotate(**day_sum)
                .order_by()
            )
    return sorted(merged.values(), key=lambda r: -r["cost_usd"])[:limit]


def budget_burn(now: datetime, *, user: int | None = None) -> list[dict]:
    """Every budget (or one user's): spent this period, limit, share and the spend
    projected to the period's end at the pace so far."""
    from ..limits import period_start

    budgets = list(
        Budget.objects.select_related("user", "key", "key__user").filter(
            Q(user_id=user) | Q(key__user_id=user) if user else Q()
        )
    )
    spent: dict[tuple, float] = {}
    for period in {b.period for b in budgets}:
        start = datetime.fromtimestamp(period_start(period, now.timestamp()), tz=dt_timezone.utc)
        f = Filters(start, now + timedelta(seconds=1))
        for row in aggregate(f, ("user_id", "key_id"), measures=("cost_usd",)):
            spent[(period, "user", row["user_id"])] = (
                spent.get((period, "user", row["user_id"]), 0) + row["cost_usd"]
            )
            spent[(period, "key", row["key_id"])] = (
                spent.get((period, "key", row["key_id"]), 0) + row["cost_usd"]
            )
    out = []
    for b in budgets:
        start = period_start(b.period, now.timestamp())
        value = spent.get((b.period, "key", b.key_id) if b.key_id else (b.period, "user", b.user_id), 0.0)
        limit = float(b.amount_usd)
        end = _period_end(b.period, start)
        elapsed = max(now.timestamp() - start, 1.0)
        projected = value if end is None else value * (end - start) / elapsed
        out.append(
            {
                "budget": b,
                "owner": str(b.key or b.user),
                "period": b.period,
                "spent": value,
                "limit": limit,
                "percent": 100 * value / limit if limit else 0,
                "projected": projected,
                "hard": b.hard,
            }
        )
    return sorted(out, key=lambda r: -r["percent"])


def _period_end(period: str, start: float) -> float | None:
    moment = datetime.fromtimestamp(start, tz=dt_timezone.utc)
    if period == "daily":
        return start + 86400
    if period == "weekly":
        return start + 7 * 86400
    if period == "monthly":
        nxt = (moment.replace(day=28) + timedelta(days=4)).replace(day=1)
        return nxt.timestamp()
    return None


def now() -> datetime:
    return datetime.fromtimestamp(_time.time(), tz=dt_timezone.utc)
