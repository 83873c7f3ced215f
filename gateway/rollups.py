"""Usage rollups that keep reports fast at millions of rows.

HourlyUsage holds complete hours, DailyUsage complete days (summed from the hours),
SessionUsage one row per session and day; DailyTargetUsage and DailyPeopleUsage hold
the days with fewer dimensions (a few dozen and a few hundred rows a day) for long
ranges. `RollupState("usage").through` is the hour up to which they are built: reports
read the daily tables for whole days before it, HourlyUsage for the hours of its day,
and raw UsageRecords from it on.

`rollup_usage()` runs every minute (Celery beat). Each hour and each day is rebuilt in
its own short transaction (delete + insert, so a re-run changes nothing): SQLite's
write lock is never held for long, so the usage writer does not wait behind it. The
last hour before the watermark is rebuilt again on every pass, for rows that arrive
late (a long stream is recorded with its start time when it ends).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone as dt_timezone

from django.db import transaction
from django.db.models import Count, F, FloatField, Max, Min, Q, Sum
from django.db.models.fields.json import KT
from django.utils import timezone

from .models import (
    DailyPeopleUsage,
    DailyTargetUsage,
    DailyUsage,
    HourlyUsage,
    RollupState,
    SessionUsage,
    UsageRecord,
)

HOUR = timedelta(hours=1)
DIMENSIONS = ("user_id", "key_id", "route", "provider", "model", "status")
TOKEN_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
MONEY = ("cost_usd", "saved_usd", "cache_saved_usd")
MEASURES = (
    "requests", "errors", "fallbacks", "retries", *TOKEN_FIELDS, "cost_usd", "latency_ms",
    "cache_hits", "saved_usd", "cache_saved_usd",
)
# Coarser daily tables, summed from the day's DailyUsage rows: long-range reports read the
# smallest table holding every dimension they group or filter by (gateway.reports.queries).
COARSE = {DailyTargetUsage: ("route", "provider", "model", "status"), DailyPeopleUsage: ("user_id", "key_id")}

# count_tokens answered by the gateway itself: an estimate, neither a request nor spend.
ESTIMATE = Q(provider="junction", model="o200k-estimate")


def billable(queryset):
    return queryset.exclude(ESTIMATE)


def served_elsewhere() -> Q:
    """A fallback: several attempts and the target that answered is not the first one."""
    return Q(attempts__gt=1) & (~Q(first_provider=F("provider")) | ~Q(first_model=F("model")))


def raw_measures() -> dict:
    """Aggregates over UsageRecord with the rollups' measure names."""
    return {
        "requests": Count("id"),
        "errors": Count("id", filter=Q(status__gte=400)),
        "fallbacks": Count("id", filter=served_elsewhere()),
        "retries": Count("id", filter=Q(attempts__gt=1) & ~served_elsewhere()),
        **{name: Sum(name) for name in TOKEN_FIELDS},
        "cost_usd": Sum("cost_usd", output_field=FloatField()),  # no Decimal per row: reports sum floats
        "latency_ms": Sum("latency_ms"),
        "cache_hits": Count("id", filter=Q(cache_hit=True)),
        "saved_usd": Sum("saved_usd", output_field=FloatField()),
        "cache_saved_usd": Sum("cache_saved_usd", output_field=FloatField()),
    }


def with_first_attempt(queryset):
    return queryset.annotate(
        first_provider=KT("attempt_chain__0__provider"), first_model=KT("attempt_chain__0__model")
    )


def rollup_measures() -> dict:
    return {
        name: Sum(name, output_field=FloatField()) if name in MONEY else Sum(name) for name in MEASURES
    }


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def day_start(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=dt_timezone.utc)


def watermark() -> datetime | None:
    state = RollupState.objects.filter(name="usage").first()
    return state.through if state else None


def _rebuild_hour(hour: datetime) -> None:
    rows = (
        with_first_attempt(
            billable(UsageRecord.objects.filter(created_at__gte=hour, created_at__lt=hour + HOUR))
        )
        .values(*DIMENSIONS)
        .annotate(**_exact(raw_measures()))
        .order_by()
    )
    with transaction.atomic():
        HourlyUsage.objects.filter(hour=hour).delete()
        HourlyUsage.objects.bulk_create(
            [HourlyUsage(hour=hour, **_clean(row)) for row in rows], batch_size=500
        )


def _rebuild_day(day, until: datetime, through: datetime | None = None) -> None:
    """DailyUsage (and the coarse tables) from the day's hours; SessionUsage from its raw rows
    before `until` (the new watermark: today's sessions so far, read by top sessions); the
    watermark moves to `through` in SessionUsage's transaction (no moment counts a row twice)."""
    start = day_start(day)
    rows = (
        HourlyUsage.objects.filter(hour__gte=start, hour__lt=start + timedelta(days=1))
        .values(*DIMENSIONS)
        .annotate(**_exact(rollup_measures()))
        .order_by()
    )
    sessions = (
        billable(UsageRecord.objects.filter(created_at__gte=start, created_at__lt=until))
        .exclude(session_id="")
        .values("session_id")
        .annotate(
            user_id=Max("user_id"),
            key_id=Max("key_id"),
            requests=Count("id"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            cached_tokens=Sum("cached_tokens"),
            cost_usd=Sum("cost_usd"),
            cache_hits=Count("id", filter=Q(cache_hit=True)),
            saved_usd=Sum("saved_usd"),
            cache_saved_usd=Sum("cache_saved_usd"),
            first_at=Min("created_at"),
            last_at=Max("created_at"),
        )
        .order_by()
    )
    rows = [_clean(row) for row in rows]
    with transaction.atomic():
        DailyUsage.objects.filter(day=day).delete()
        DailyUsage.objects.bulk_create([DailyUsage(day=day, **row) for row in rows], batch_size=500)
        for model, dims in COARSE.items():
            model.objects.filter(day=day).delete()
            model.objects.bulk_create(
                [model(day=day, **row) for row in _coarsen(rows, dims)], batch_size=500
            )
    sessions = [SessionUsage(day=day, **row) for row in sessions]  # read before the write lock
    with transaction.atomic():
        SessionUsage.objects.filter(day=day).delete()
        SessionUsage.objects.bulk_create(sessions, batch_size=500)
        if through is not None:
            RollupState.objects.filter(name="usage").update(through=through)


def _exact(measures: dict) -> dict:
    """Rollups store exact decimal money (reports read it as a float)."""
    return {**measures, **{name: Sum(name) for name in MONEY}}


def _coarsen(rows: list[dict], dims: tuple[str, ...]) -> list[dict]:
    """The day's rows summed over fewer dimensions (in Python: a day is ~1,000 rows)."""
    out: dict[tuple, dict] = {}
    for row in rows:
        ident = tuple(row[d] for d in dims)
        into = out.get(ident)
        if into is None:
            out[ident] = into = {**{d: row[d] for d in dims}, **{m: 0 for m in MEASURES}}
        for m in MEASURES:
            into[m] += row[m]
    return list(out.values())


def _clean(row: dict) -> dict:
    return {
        name: (value if value is not None else 0) if name in MEASURES else value
        for name, value in row.items()
    }


def rollup_usage(*, now: datetime | None = None, max_hours: int | None = None) -> int:
    """Bring the rollups up to the last complete hour; returns how many hours were rebuilt.
    `max_hours` bounds one pass (the first pass over a large history is done in steps;
    the watermark moves after each day, so an interrupted pass resumes where it stopped)."""
    now = now or timezone.now()
    target = floor_hour(now)
    through = watermark()
    if through is None:
        first = UsageRecord.objects.aggregate(first=Min("created_at"))["first"]
        through = floor_hour(first) if first else target
        RollupState.objects.update_or_create(name="usage", defaults={"through": through})
    start = min(through - HOUR, target)  # the last rolled hour again: late rows
    hours = []
    hour = start
    while hour < target and (max_hours is None or len(hours) < max_hours):
        hours.append(hour)
        hour += HOUR
    for index, hour in enumerate(hours):
        _rebuild_hour(hour)
        last_of_day = index == len(hours) - 1 or hours[index + 1].date() != hour.date()
        if last_of_day:
            _rebuild_day(hour.date(), hour + HOUR, hour + HOUR if hour + HOUR > through else None)
    return len(hours)
