"""Cache hits and savings in the rollups and reports (issues 13 and 15), the coarse daily
rollups long ranges read, users in several teams, and the route admin's hit rate: every
number checked against the raw records."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import Count, Q, Sum
from django.test import Client
from django.test.utils import CaptureQueriesContext

from gateway import rollups
from gateway.models import (
    DailyPeopleUsage,
    DailyTargetUsage,
    DailyUsage,
    HourlyUsage,
    RollupState,
    SessionUsage,
    UsageRecord,
)
from gateway.reports.queries import Filters, aggregate, daily_table, now, top_sessions
from gateway.reports.views import overview_data
from providers.pricing import Price, Tier
from tests.e2e import world

BACK = (timedelta(days=3, hours=2), timedelta(days=3), timedelta(days=1, hours=5), timedelta(hours=3),
        timedelta(hours=1, minutes=30), timedelta(minutes=2))


@pytest.fixture
def fresh_rollups():
    def clear():
        RollupState.objects.all().delete()
        for model in (HourlyUsage, DailyUsage, SessionUsage, DailyTargetUsage, DailyPeopleUsage):
            model.objects.all().delete()

    clear()
    yield
    clear()


@pytest.fixture
def staff():
    user, _ = get_user_model().objects.get_or_create(username="cache-auditor", defaults={
        "is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    return client


def _record(tag: str, i: int, moment, *, route: str, model: str, hit=False, user=None, session="",
            prompt=1000, cached=0, cost="0.01", saved="0", cache_saved="0") -> UsageRecord:
    return UsageRecord.objects.create(
        request_id=f"{tag}-{i}", created_at=moment, endpoint="chat.completions", route=route,
        provider=f"{tag}-p", model=model, status=200, attempts=0 if hit else 1,
        attempt_chain=[] if hit else [{"provider": f"{tag}-p", "model": model, "status": 200}],
        prompt_tokens=0 if hit else prompt, completion_tokens=0 if hit else 50,
        cached_tokens=0 if hit else cached, cost_usd="0" if hit else cost, cache_hit=hit,
        saved_usd=saved if hit else "0", cache_saved_usd="0" if hit else cache_saved,
        user=user, session_id=session)


def _traffic(tag: str) -> None:
    """Two routes over days, hours and the raw tail: misses with prompt-cache reads, hits."""
    moment = now()
    i = 0
    for back in BACK:
        for route, model in ((f"{tag}-a", "m1"), (f"{tag}-b", "m2")):
            i += 1
            _record(tag, i, moment - back, route=route, model=model, session=f"{tag}-s-{route}",
                    cached=100 * (i % 4), cost=f"0.0{i % 9 + 1}", cache_saved=f"0.00{i % 7}")
            if route.endswith("a") or back < timedelta(hours=2):
                i += 1
                _record(tag, i, moment - back, route=route, model=model, hit=True,
                        session=f"{tag}-s-{route}", saved=f"0.0{i % 9 + 1}")


def _raw(tag: str, since, field: str) -> dict:
    rows = (UsageRecord.objects.filter(provider=f"{tag}-p", created_at__gte=since).values(field)
            .annotate(requests=Count("id"), hits=Count("id", filter=Q(cache_hit=True)),
                      saved=Sum("saved_usd"), cache_saved=Sum("cache_saved_usd"),
                      cached=Sum("cached_tokens"), prompt=Sum("prompt_tokens")))
    return {row[field]: row for row in rows}


def test_cache_hits_and_savings_per_route_model_and_session_equal_the_raw_records(fresh_rollups):
    tag = world.unique("cache")
    _traffic(tag)
    rollups.rollup_usage()
    assert DailyUsage.objects.filter(provider=f"{tag}-p", cache_hits__gt=0).exists()
    for days in (1, 2, 4, 7):
        f = Filters(start=rollups.floor_hour(now()) - timedelta(days=days), end=now(), provider=f"{tag}-p")
        for dim in ("route", "model"):
            raw = _raw(tag, f.start, dim)
            got = {row[dim]: row for row in aggregate(f, (dim,))}
            assert set(got) == set(raw)
            for name, row in got.items():
                expect = raw[name]
                assert (row["requests"], row["cache_hits"], row["cached_tokens"], row["prompt_tokens"]) == (
                    expect["requests"], expect["hits"], expect["cached"], expect["prompt"])
                assert round(row["saved_usd"], 8) == float(expect["saved"])
                assert round(row["cache_saved_usd"], 8) == float(expect["cache_saved"])
        data = overview_data(f, top=None)
        raw = _raw(tag, f.start, "route")
        for row in data["routes"]:
            expect = raw[row["route"]]
            assert row["hit_rate"] == pytest.approx(100 * expect["hits"] / expect["requests"])
            assert row["prompt_cache_rate"] == pytest.approx(100 * expect["cached"] / expect["prompt"])
    f = Filters(start=rollups.floor_hour(now()) - timedelta(days=7), end=now())
    sessions = {s["session_id"]: s for s in top_sessions(f, limit=1000)}
    raw = _raw(tag, f.start, "session_id")
    for name, expect in raw.items():
        got = sessions[name]
        assert (got["requests"], got["cache_hits"], got["cached_tokens"], got["prompt_tokens"]) == (
            expect["requests"], expect["hits"], expect["cached"], expect["prompt"])
        assert round(got["saved_usd"], 8) == float(expect["saved"])
        assert round(got["cache_saved_usd"], 8) == float(expect["cache_saved"])


def test_the_overview_and_its_csv_show_cache_savings_per_route(fresh_rollups, staff):
    tag = world.unique("cpage")
    _traffic(tag)
    rollups.rollup_usage()
    page = staff.get("/reports/", {"range": "7d", "provider": f"{tag}-p"}).content.decode()
    assert "Caching by route" in page and f"{tag}-a" in page
    raw = _raw(tag, now() - timedelta(days=7), "route")[f"{tag}-a"]
    rate = 100 * raw["hits"] / raw["requests"]
    assert f"{raw['hits']} ({rate:.1f}%)" in page
    response = staff.get("/reports/", {"range": "7d", "provider": f"{tag}-p", "export": "routes"})
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:4] == ["route", "requests", "cost_usd", "cache_hits"]
    line = next(r for r in rows if r[0] == f"{tag}-a")
    assert (int(line[1]), int(line[3])) == (raw["requests"], raw["hits"])
    assert float(line[5]) == pytest.approx(float(raw["saved"]))
    sessions = staff.get("/reports/", {"range": "7d", "export": "sessions"}).content.decode()
    assert "prompt_cache_saved_usd" in sessions.splitlines()[0]


def test_long_ranges_read_the_coarse_daily_tables_with_the_same_numbers(fresh_rollups):
    tag = world.unique("coarse")
    user = get_user_model().objects.create(username=f"{tag}-u")
    moment = now()
    for i, back in enumerate(BACK * 3):
        _record(tag, i, moment - back, route=f"{tag}-r{i % 2}", model=f"m{i % 3}",
                user=user if i % 2 else None,
                cached=10 * i, cost=f"0.0{i % 9 + 1}", cache_saved=f"0.00{i % 5}", hit=i % 4 == 0,
                saved="0.02")
    rollups.rollup_usage()
    assert daily_table({"route", "model"}) is DailyTargetUsage
    assert daily_table({"user_id", "key_id"}) is DailyPeopleUsage
    assert daily_table({"user_id", "model"}) is DailyUsage
    for model in (DailyTargetUsage, DailyPeopleUsage):  # the same sums as the full daily table
        for day in DailyUsage.objects.filter(provider=f"{tag}-p").values_list("day", flat=True).distinct():
            full = DailyUsage.objects.filter(day=day).aggregate(r=Sum("requests"), c=Sum("cost_usd"),
                                                                s=Sum("cache_saved_usd"))
            assert model.objects.filter(day=day).aggregate(r=Sum("requests"), c=Sum("cost_usd"),
                                                           s=Sum("cache_saved_usd")) == full
    f = Filters(start=rollups.floor_hour(now()) - timedelta(days=7), end=now())
    mine = UsageRecord.objects.filter(provider=f"{tag}-p", created_at__gte=f.start)
    by_user = {r["user_id"]: r for r in aggregate(f, ("user_id", "key_id"))}
    raw_user = mine.filter(user=user).aggregate(n=Count("id"), c=Sum("cost_usd"), h=Count("id", filter=Q(
        cache_hit=True)))
    assert (by_user[user.id]["requests"], by_user[user.id]["cache_hits"]) == (raw_user["n"], raw_user["h"])
    assert round(by_user[user.id]["cost_usd"], 8) == float(raw_user["c"])
    raw_route = mine.values("route", "model").annotate(n=Count("id"), c=Sum("cost_usd"))
    for row in raw_route:
        got = [r for r in aggregate(f, ("route", "provider", "model"))
               if (r["route"], r["model"]) == (row["route"], row["model"])]
        assert [(g["requests"], round(g["cost_usd"], 8)) for g in got] == [(row["n"], float(row["c"]))]
    # Idempotent: a re-run over rolled days leaves the coarse tables as they were.
    before = sorted(DailyTargetUsage.objects.values_list("day", "route", "model", "requests", "cost_usd"))
    RollupState.objects.update(through=rollups.watermark() - timedelta(days=2))
    rollups.rollup_usage()
    after = sorted(DailyTargetUsage.objects.values_list("day", "route", "model", "requests", "cost_usd"))
    assert after == before


def test_a_user_in_two_teams_counts_in_each_team(fresh_rollups, staff):
    tag = world.unique("teams")
    alpha, beta = Group.objects.create(name=f"{tag}-alpha"), Group.objects.create(name=f"{tag}-beta")
    both = get_user_model().objects.create(username=f"{tag}-both")
    both.groups.add(alpha, beta)
    one = get_user_model().objects.create(username=f"{tag}-one")
    one.groups.add(alpha)
    moment = now()
    for i, back in enumerate(BACK):
        _record(tag, i, moment - back, route="r", model="m", user=both, cost="0.10")
        _record(tag, 100 + i, moment - back, route="r", model="m", user=one, cost="0.01")
    rollups.rollup_usage()
    f = Filters(start=rollups.floor_hour(moment) - timedelta(days=7), end=now(), provider=f"{tag}-p")
    data = overview_data(f, stack="team", by="team")
    teams = {r["name"]: r for r in data["breakdown"]}
    assert teams[alpha.name]["requests"] == 12 and round(teams[alpha.name]["cost_usd"], 8) == 0.66
    assert teams[beta.name]["requests"] == 6 and round(teams[beta.name]["cost_usd"], 8) == 0.6
    assert data["total"]["requests"] == 12  # the grand total counts each request once
    series = {s["name"]: sum(s["values"]) for s in data["chart"]["series"]}
    assert round(series[alpha.name], 6) == 0.66 and round(series[beta.name], 6) == 0.6
    for team, expect in ((alpha, 0.66), (beta, 0.6)):  # the team filter agrees
        [row] = aggregate(Filters(f.start, f.end, team=team.id, provider=f"{tag}-p"))
        assert round(row["cost_usd"], 8) == expect
    page = staff.get("/reports/", {"range": "7d", "provider": f"{tag}-p", "by": "team"}).content.decode()
    assert "counts in each of them" in page


def test_the_route_admin_shows_the_response_cache_hit_rate_without_a_query_per_row(fresh_rollups, staff):
    from routing.models import Route

    tag = world.unique("radmin")

    def changelist() -> tuple[str, int]:
        with CaptureQueriesContext(connection) as queries:
            response = staff.get("/admin/routing/route/", {"q": tag})
        assert response.status_code == 200
        return response.content.decode(), len(queries)

    moment = now()
    Route.objects.create(name=f"{tag}-a")
    for i in range(4):
        _record(tag, i, moment - timedelta(hours=3), route=f"{tag}-a", model="m", hit=i == 0, saved="0.5")
    rollups.rollup_usage()
    page, few = changelist()
    assert "cache hits (7 d)" in page.lower() and "25.0% (1/4), saved $0.50" in page
    for n in range(5):
        Route.objects.create(name=f"{tag}-more{n}")
    page, many = changelist()
    assert "25.0% (1/4)" in page and many == few


def test_the_prompt_cache_saving_is_priced_against_the_uncached_input_price():
    price = Price(3.0, 15.0, cache_read=0.3, cache_write=3.75)
    assert price.cache_saving(10_000, 0, 0) == 0.0
    # 8,000 tokens read at 0.3 instead of 3.0, 1,000 written at 3.75 instead of 3.0.
    assert price.cache_saving(10_000, 8_000, 1_000) == pytest.approx((8_000 * 2.7 - 1_000 * 0.75) / 1e6)
    # The cost and the saving add up to the uncached cost.
    assert price.cost(10_000, 0, 8_000, 1_000) + price.cache_saving(10_000, 8_000, 1_000) == pytest.approx(
        Price(3.0, 15.0).cost(10_000, 0))
    tiered = Price(3.0, 15.0, 0.3, 3.75, tiers=(Tier(200_000, 6.0, 22.5, 0.6, 7.5),))
    assert tiered.cache_saving(300_000, 100_000) == pytest.approx(100_000 * 5.4 / 1e6)
    assert Price(1.0, 2.0).cache_saving(1000, 500) == 0.0  # no cache price: no discount
    assert Decimal(str(round(price.cache_saving(10_000, 8_000, 1_000), 8))) == Decimal("0.020850")


def test_the_session_page_shows_its_cache_hits_and_savings(staff):
    tag = world.unique("spage")
    moment = now()
    _record(tag, 1, moment - timedelta(minutes=5), route="r", model="m", session=f"{tag}-s", cached=400,
            cache_saved="0.0012")
    _record(tag, 2, moment - timedelta(minutes=4), route="r", model="m", session=f"{tag}-s", hit=True,
            saved="0.25")
    page = staff.get(f"/reports/sessions/{tag}-s/").content.decode()
    # 400 of 1,000 input tokens read from the cache (the hit has no upstream tokens).
    assert "1 response-cache hit (saved $0.2500)" in page
    assert "prompt cache 40.0% of input tokens read from cache (saved $0.0012)" in page
    assert "(response cache hit)" in page
