"""Report pages (staff): overview, request list, request page, session page; CSV of
every table (`?export=<table>`); the same overview as JSON for the management API."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import render

from .. import rollups
from ..models import UsageRecord, VirtualKey
from ..selectors import unpriced_usage
from . import filters as filter_bar
from .access import spend_viewer_required
from .export import csv_response
from .queries import Filters, aggregate, budget_burn, now, top_sessions

STACKS = {"model": "model", "provider": "provider", "user": "user_id", "team": "user_id", "route": "route"}
BREAKDOWNS = {
    "user": "user_id",
    "key": "key_id",
    "route": "route",
    "provider": "provider",
    "model": "model",
    "team": "user_id",
    "day": None,
}
MAX_SERIES = 8
PAGE_SIZE = 50


class Names:
    """Display names for user and key ids, and each user's teams (one query each)."""

    def __init__(self, user_ids=(), key_ids=()) -> None:
        user_ids, key_ids = {i for i in user_ids if i}, {i for i in key_ids if i}
        # Tuples, not model instances: a few hundred users and keys per page.
        User = get_user_model()
        self.users = dict(User.objects.filter(id__in=user_ids).values_list("id", "username"))
        self.teams: dict = {}
        memberships = User.groups.through.objects.filter(user_id__in=user_ids).order_by("group__name")
        for user_id, team in memberships.values_list("user_id", "group__name"):
            self.teams.setdefault(user_id, []).append(team)
        self.keys = {
            key_id: (f"{prefix}… {name}".strip(), user_id)
            for key_id, prefix, name, user_id in VirtualKey.objects.filter(id__in=key_ids).values_list(
                "id", "prefix", "name", "user_id")
        }

    def user(self, user_id) -> str:
        return self.users.get(user_id, "-") if user_id else "(no user)"

    def teams_of(self, user_id) -> list[str]:
        """Every team of a user: a user in several teams counts in each of them."""
        return self.teams.get(user_id) or ["(no team)"]

    def key(self, key_id) -> str:
        return self.keys.get(key_id, ("-", None))[0] if key_id else "(no key)"


def _sum(rows, into=None) -> dict:
    total = into or {m: 0 for m in rollups.MEASURES}
    for row in rows:
        for m in rollups.MEASURES:
            total[m] += row[m]
    return total


def _regroup(rows, names: tuple[str, ...]) -> list[dict]:
    out: dict = {}
    for row in rows:
        ident = tuple(row[n] for n in names)
        into = out.get(ident)
        if into is None:
            out[ident] = into = {**{n: row[n] for n in names}, **{m: 0 for m in rollups.MEASURES}}
        _sum([row], into)
    return list(out.values())


def _rates(row: dict) -> dict:
    """Rates of a table row (a session row has no errors, fallbacks or latency)."""
    requests = row["requests"] or 0
    prompt = row.get("prompt_tokens") or 0
    share = lambda name: 100 * (row.get(name) or 0) / requests if requests else 0  # noqa: E731
    return {
        **row,
        "error_rate": share("errors"),
        "fallback_rate": share("fallbacks"),
        "mean_latency": (row.get("latency_ms") or 0) / requests if requests else 0,
        # Response cache: requests the gateway answered itself; prompt cache: the provider's
        # cache-read share of the input tokens.
        "hit_rate": share("cache_hits"),
        "prompt_cache_rate": 100 * (row.get("cached_tokens") or 0) / prompt if prompt else 0,
    }


def _change(current: float, previous: float) -> float | None:
    return None if not previous else 100 * (current - previous) / previous


def overview_data(f: Filters, stack: str = "model", by: str = "", top: int | None = 10) -> dict:
    """Everything on the overview page, as plain data (the JSON API returns it too).
    `top` cuts the top-N tables (None: every row, for the CSV exports)."""
    bucket = "hour" if f.end - f.start <= timedelta(days=2, minutes=1) else "day"
    # People and targets apart: each reads its own small rollup (queries.daily_table).
    people = aggregate(f, ("user_id", "key_id"))
    routed = aggregate(f, ("route", "provider", "model"))
    targets = _regroup(routed, ("provider", "model"))
    routes = _regroup(routed, ("route",))
    series_rows = aggregate(f, (STACKS[stack],), bucket, measures=("cost_usd",))  # the chart: cost only
    breakdown_rows = (
        aggregate(f, (BREAKDOWNS[by],) if BREAKDOWNS.get(by) else (), "day" if by == "day" else None)
        if by
        else []
    )
    previous = _sum(aggregate(f.previous()))
    names = Names(
        {r["user_id"] for r in people} | {r.get("user_id") for r in series_rows + breakdown_rows},
        {r["key_id"] for r in people} | {r.get("key_id") for r in breakdown_rows},
    )
    total = _sum(targets)

    users: dict = {}
    for row in people:
        into = users.setdefault(
            row["user_id"],
            {
                "user_id": row["user_id"],
                "name": names.user(row["user_id"]),
                **{m: 0 for m in rollups.MEASURES},
            },
        )
        _sum([row], into)
    keys = [{**row, "name": names.key(row["key_id"]), "user": names.user(row["user_id"])} for row in people]
    providers: dict = {}
    for row in targets:
        into = providers.setdefault(
            row["provider"], {"provider": row["provider"], **{m: 0 for m in rollups.MEASURES}}
        )
        _sum([row], into)

    labels = {"user": lambda v: [names.user(v)], "team": names.teams_of}.get(stack, lambda v: [v or "-"])
    series: dict = {}
    for row in series_rows:
        for name in labels(row[STACKS[stack]]):  # a user in several teams: in each team's band
            series.setdefault(name, {}).setdefault(row["bucket"], 0.0)
            series[name][row["bucket"]] += row["cost_usd"]
    ranked = sorted(series, key=lambda n: -sum(series[n].values()))
    if len(ranked) > MAX_SERIES:  # the long tail in one band
        other = {}
        for name in ranked[MAX_SERIES - 1 :]:
            for b, v in series.pop(name).items():
                other[b] = other.get(b, 0.0) + v
        ranked = ranked[: MAX_SERIES - 1] + ["other"]
        series["other"] = other
    buckets = _buckets(f, bucket)
    chart = {
        "labels": [_label(b, bucket) for b in buckets],
        "series": [{"name": n, "values": [round(series[n].get(b, 0.0), 6) for b in buckets]} for n in ranked],
    }

    breakdown = []
    for row in breakdown_rows:
        if by == "day":
            name = str(row["bucket"])
        elif by == "user":
            name = names.user(row["user_id"])
        elif by == "team":  # a user in several teams counts in each
            breakdown += [{**row, "name": team} for team in names.teams_of(row["user_id"])]
            continue
        elif by == "key":
            name = names.key(row["key_id"])
        else:
            name = row[BREAKDOWNS[by]] or "-"
        breakdown.append({**row, "name": str(name)})
    if by == "team":  # several users per team: sum them
        merged: dict = {}
        for row in breakdown:
            into = merged.setdefault(row["name"], {"name": row["name"], **{m: 0 for m in rollups.MEASURES}})
            _sum([row], into)
        breakdown = [_rates(r) for r in merged.values()]
    else:
        breakdown = [_rates(r) for r in breakdown]
    breakdown.sort(
        key=(lambda r: r["name"]) if by == "day" else (lambda r: -r["cost_usd"]), reverse=by == "day"
    )

    by_cost = lambda r: -r["cost_usd"]  # noqa: E731
    return {
        "bucket": bucket,
        "stack": stack,
        "chart": chart,
        "total": _rates(total),
        "previous": _rates(previous),
        "change": {
            "requests": _change(total["requests"], previous["requests"]),
            "cost_usd": _change(float(total["cost_usd"]), float(previous["cost_usd"])),
        },
        "users": sorted(users.values(), key=by_cost)[:top],
        "keys": sorted(keys, key=by_cost)[:top],
        "models": [_rates(r) for r in sorted(targets, key=by_cost)[:top]],
        "routes": [_rates(r) for r in sorted(routes, key=lambda r: (-r["requests"], r["route"]))],
        "providers": [_rates(r) for r in sorted(providers.values(), key=by_cost)],
        "sessions": [
            {**_rates(s), "user": names.user(s["user_id"])} for s in top_sessions(f, limit=top or 1000)
        ],
        "budgets": budget_burn(now()),
        "unpriced": unpriced_usage(since=f.start, until=f.end),
        "breakdown": breakdown,
        "by": by,
    }


def _buckets(f: Filters, bucket: str) -> list:
    out = []
    if bucket == "hour":
        moment = rollups.floor_hour(f.start)
        while moment < f.end:
            out.append(moment)
            moment += timedelta(hours=1)
    else:
        day = f.start.date()
        while rollups.day_start(day) < f.end:
            out.append(day)
            day += timedelta(days=1)
    return out


def _label(value, bucket: str) -> str:
    return value.strftime("%m-%d %H:00") if bucket == "hour" else value.isoformat()


CACHE_COLUMNS = ["cache_hits", "hit_rate_pct", "saved_usd", "prompt_cache_read_pct", "prompt_cache_saved_usd"]


def _cache_cells(r: dict) -> list:
    return [r["cache_hits"], round(r["hit_rate"], 2), round(r["saved_usd"], 8),
            round(r["prompt_cache_rate"], 2), round(r["cache_saved_usd"], 8)]


EXPORTS = {
    "series": None,
    "users": (
        ["user", "requests", "errors", "fallbacks", "prompt_tokens", "completion_tokens", "cost_usd"],
        lambda r: [
            r["name"],
            r["requests"],
            r["errors"],
            r["fallbacks"],
            r["prompt_tokens"],
            r["completion_tokens"],
            r["cost_usd"],
        ],
    ),
    "keys": (
        ["key", "user", "requests", "errors", "cost_usd"],
        lambda r: [r["name"], r["user"], r["requests"], r["errors"], r["cost_usd"]],
    ),
    "models": (
        [
            "provider",
            "model",
            "requests",
            "errors",
            "fallbacks",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
            *CACHE_COLUMNS,
        ],
        lambda r: [
            r["provider"],
            r["model"],
            r["requests"],
            r["errors"],
            r["fallbacks"],
            r["prompt_tokens"],
            r["completion_tokens"],
            r["cost_usd"],
            *_cache_cells(r),
        ],
    ),
    "providers": (
        [
            "provider",
            "requests",
            "errors",
            "error_rate_pct",
            "fallbacks",
            "fallback_rate_pct",
            "retries",
            "mean_latency_ms",
            "cost_usd",
        ],
        lambda r: [
            r["provider"],
            r["requests"],
            r["errors"],
            round(r["error_rate"], 2),
            r["fallbacks"],
            round(r["fallback_rate"], 2),
            r["retries"],
            round(r["mean_latency"], 1),
            r["cost_usd"],
        ],
    ),
    "sessions": (
        ["session", "user", "requests", "cost_usd", *CACHE_COLUMNS, "last_at"],
        lambda r: [r["session_id"], r["user"], r["requests"], r["cost_usd"], *_cache_cells(r),
                   r["last_at"].isoformat()],
    ),
    "routes": (
        ["route", "requests", "cost_usd", *CACHE_COLUMNS],
        lambda r: [r["route"], r["requests"], r["cost_usd"], *_cache_cells(r)],
    ),
    "budgets": (
        ["owner", "period", "spent_usd", "limit_usd", "percent", "projected_usd"],
        lambda r: [
            r["owner"],
            r["period"],
            round(r["spent"], 6),
            r["limit"],
            round(r["percent"], 1),
            round(r["projected"], 6),
        ],
    ),
}
BREAKDOWN_COLUMNS = (
    "requests",
    "errors",
    "fallbacks",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_usd",
)


@spend_viewer_required
def overview(request):
    params = request.GET
    stack = params.get("stack", "model")
    by = params.get("by", "")
    if stack not in STACKS:
        return HttpResponseBadRequest(f"unknown stack {stack!r}")
    if by and by not in BREAKDOWNS:
        return HttpResponseBadRequest(f"unknown dimension {by!r}")
    export = params.get("export") or ("by" if params.get("format") == "csv" else "")
    if export == "by" and not by:
        by = "user"
    f = filter_bar.parse(params)
    data = overview_data(f, stack, by, top=None if export else 10)
    if export:
        stamp = f"{f.start:%Y%m%d}-{f.end:%Y%m%d}"
        if export == "by":
            return csv_response(
                f"junction-spend-by-{by}-{stamp}.csv",
                [by, *BREAKDOWN_COLUMNS],
                ([r["name"], *(r[c] for c in BREAKDOWN_COLUMNS)] for r in data["breakdown"]),
            )
        if export == "series":
            chart = data["chart"]
            return csv_response(
                f"junction-spend-over-time-by-{stack}-{stamp}.csv",
                [data["bucket"], *(s["name"] for s in chart["series"])],
                (
                    [label, *(s["values"][i] for s in chart["series"])]
                    for i, label in enumerate(chart["labels"])
                ),
            )
        if export not in EXPORTS:
            return HttpResponseBadRequest(f"unknown table {export!r}")
        header, row = EXPORTS[export]
        return csv_response(f"junction-{export}-{stamp}.csv", header, (row(r) for r in data[export]))
    series_table = [
        {
            "label": label,
            "values": [s["values"][i] for s in data["chart"]["series"]],
            "total": sum(s["values"][i] for s in data["chart"]["series"]),
        }
        for i, label in enumerate(data["chart"]["labels"])
    ]
    return render(
        request,
        "reports/overview.html",
        {
            **data,
            "filters": f,
            "period": filter_bar.describe(f),
            "series_table": series_table,
            "stacks": list(STACKS),
            "dimensions": list(BREAKDOWNS),
            **_bar(params, f),
        },
    )


def _bar(params, f: Filters) -> dict:
    """Context of the filter bar and of the links that keep the filters."""
    return {
        "choices": filter_bar.choices(f),
        "names": filter_bar.distinct_values(),
        "params": params,
        "qs": filter_bar.query(params),
        "preset": params.get("range") or "7d",
        "through": rollups.watermark(),
    }


@spend_viewer_required
def request_list(request):
    params = request.GET
    f = filter_bar.parse(params)
    rows = (
        rollups.billable(UsageRecord.objects.filter(created_at__gte=f.start, created_at__lt=f.end))
        .filter(f.q())
        .select_related("user", "key")
        .order_by("-created_at", "-id")
    )
    if params.get("session"):
        rows = rows.filter(session_id=params["session"])
    before = params.get("before", "")
    if before:  # keyset pagination: no OFFSET scan and no COUNT over a million rows
        try:
            stamp, _, last_id = before.rpartition("_")
            moment = datetime.fromisoformat(stamp)
            rows = rows.filter(Q(created_at__lt=moment) | Q(created_at=moment, id__lt=int(last_id)))
        except ValueError:
            return HttpResponseBadRequest("bad `before` cursor")
    if params.get("export") == "requests":
        columns = [
            "created_at",
            "request_id",
            "user",
            "key",
            "route",
            "provider",
            "model",
            "status",
            "attempts",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "cost_usd",
            "latency_ms",
            "session_id",
        ]
        fields = ["created_at", "request_id", "user__username", "key__prefix", *columns[4:]]
        return csv_response(
            f"junction-requests-{f.start:%Y%m%d}-{f.end:%Y%m%d}.csv",
            columns,
            (
                [row[0].isoformat(), *row[1:]]  # tuples, not model instances: 100,000 rows stay cheap
                for row in rows.values_list(*fields)[:EXPORT_LIMIT].iterator(chunk_size=2000)
            ),
        )
    page = list(rows[: PAGE_SIZE + 1])
    more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    cursor = f"{page[-1].created_at.isoformat()}_{page[-1].id}" if more else ""
    return render(
        request,
        "reports/requests.html",
        {
            "rows": page,
            "next": filter_bar.query(params, before=cursor)
            + (f"&session={params['session']}" if params.get("session") else "")
            if cursor
            else "",
            "first_page": bool(before),
            "period": filter_bar.describe(f),
            "filters": f,
            "session": params.get("session"),
            **_bar(params, f),
        },
    )


EXPORT_LIMIT = 100_000  # rows of the request list in one CSV (narrow the filters for more)


@spend_viewer_required
def request_detail(request, request_id: str):
    record = UsageRecord.objects.select_related("user", "key").filter(request_id=request_id).first()
    if record is None:
        raise Http404("no such request")
    return render(request, "reports/request.html", {"r": record, "tokens": _token_kinds(record)})


def _token_kinds(r: UsageRecord) -> list[tuple[str, int]]:
    return [
        ("input (uncached)", max(r.prompt_tokens - r.cached_tokens - r.cache_write_tokens, 0)),
        ("input read from cache", r.cached_tokens),
        ("input written to cache", r.cache_write_tokens),
        ("output", r.completion_tokens),
        ("of which reasoning", r.reasoning_tokens),
    ]


@spend_viewer_required
def session_detail(request, session_id: str):
    return render(request, "reports/session.html", {**session_data(session_id), "detail_links": True})


def session_data(session_id: str, *, user_id: int | None = None) -> dict:
    rows = (
        UsageRecord.objects.filter(session_id=session_id).select_related("user", "key").order_by("created_at")
    )
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    turns, running = [], 0.0
    cache = {"hits": 0, "saved_usd": 0.0, "cache_saved_usd": 0.0, "cached_tokens": 0, "prompt_tokens": 0}
    for r in rows[:5000]:
        estimate = r.provider == "junction" and r.model == "o200k-estimate"
        running += 0 if estimate else float(r.cost_usd)
        turns.append({"r": r, "running": running, "estimate": estimate})
        if not estimate:
            cache["hits"] += r.cache_hit
            cache["saved_usd"] += float(r.saved_usd)
            cache["cache_saved_usd"] += float(r.cache_saved_usd)
            cache["cached_tokens"] += r.cached_tokens
            cache["prompt_tokens"] += r.prompt_tokens
    if not turns:
        raise Http404("no such session")
    return {
        "session_id": session_id,
        "turns": turns,
        "total": running,
        "first": turns[0]["r"],
        "last": turns[-1]["r"],
        "requests": sum(1 for t in turns if not t["estimate"]),
        "cache": {**cache, "prompt_cache_rate": 100 * cache["cached_tokens"] / cache["prompt_tokens"]
                  if cache["prompt_tokens"] else 0.0},
    }


@spend_viewer_required
def live(request):
    return render(request, "reports/live.html", {"budgets": budget_burn(now())[:10]})
