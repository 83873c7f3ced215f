"""The filter bar shared by every report page: query string ⇄ Filters."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from .. import rollups
from ..models import VirtualKey
from .queries import Filters, now

PRESETS = {
    "24h": "Last 24 hours",
    "2d": "Last 2 days",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
    "today": "Today",
    "month": "This month",
    "custom": "Custom",
}
FILTER_NAMES = ("range", "from", "to", "user", "team", "key", "route", "provider", "model", "status")


def _int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _date(value) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def parse(params) -> Filters:
    moment = now()
    preset = params.get("range") or "7d"
    end = moment
    if preset == "custom" and (_date(params.get("from")) or _date(params.get("to"))):
        start_day = _date(params.get("from")) or (moment - timedelta(days=7)).date()
        end_day = _date(params.get("to"))
        start = rollups.day_start(start_day)
        if end_day:  # the `to` day is included
            end = min(rollups.day_start(end_day) + timedelta(days=1), moment)
    elif preset == "today":
        start = rollups.day_start(moment.date())
    elif preset == "month":
        start = rollups.day_start(moment.date().replace(day=1))
    else:
        hours = {"24h": 24, "2d": 48, "30d": 720, "90d": 2160}.get(preset, 168)
        # Whole hours: the rollups' grain (and the chart's first bucket is a whole one).
        start = rollups.floor_hour(moment) - timedelta(hours=hours - 1)
    status = params.get("status", "")
    return Filters(
        start=start,
        end=max(end, start),
        user=_int(params.get("user")),
        team=_int(params.get("team")),
        key=_int(params.get("key")),
        route=params.get("route", "")[:200],
        provider=params.get("provider", "")[:100],
        model=params.get("model", "")[:200],
        status=status if status in ("ok", "error") or status.isdigit() else "",
    )


def query(params, **changes) -> str:
    """The current filters' query string with some changed (None removes one)."""
    values = {name: params.get(name) for name in FILTER_NAMES if params.get(name)}
    for name, value in changes.items():
        if value in (None, ""):
            values.pop(name, None)
        else:
            values[name] = value
    return urlencode(values)


def choices(f: Filters) -> dict:
    """Options of the filter bar's selects (small lists: names, not rows)."""
    users = get_user_model().objects.order_by("username").values_list("id", "username")[:1000]
    return {
        "users": list(users),
        "teams": list(Group.objects.order_by("name").values_list("id", "name")),
        "keys": list(
            VirtualKey.objects.select_related("user")
            .order_by("user__username", "prefix")
            .values_list("id", "prefix", "name", "user__username")[:2000]
        ),
        "presets": PRESETS,
    }


def distinct_values() -> dict:
    """Route/provider/model names known to the rollups (not a scan of the raw rows),
    cached for a minute (the rollups move once a minute at most)."""
    from django.core.cache import cache

    from ..models import DailyTargetUsage, HourlyUsage

    out = cache.get("junction:reports:names")
    if out is not None:
        return out
    out = {}
    for name in ("route", "provider", "model"):
        names = set(DailyTargetUsage.objects.values_list(name, flat=True).distinct())  # a few rows a day
        names |= set(
            HourlyUsage.objects.filter(hour__gte=now() - timedelta(days=2))
            .values_list(name, flat=True)
            .distinct()
        )
        out[name + "s"] = sorted(n for n in names if n)
    cache.set("junction:reports:names", out, 60)
    return out


def describe(f: Filters) -> str:
    return f"{f.start:%Y-%m-%d %H:%M} – {f.end:%Y-%m-%d %H:%M} UTC"
