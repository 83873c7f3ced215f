"""Rollups and the report numbers built on them, checked against the raw records."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Count, Sum

from gateway import rollups
from gateway.models import DailyUsage, HourlyUsage, RollupState, SessionUsage, UsageRecord
from gateway.reports.queries import Filters, aggregate, now, top_sessions
from tests.e2e import world


@pytest.fixture
def fresh_rollups():
    """A rebuild from the first record (the shared test database has no history)."""

    def clear():
        RollupState.objects.all().delete()
        for model in (HourlyUsage, DailyUsage, SessionUsage):
            model.objects.all().delete()

    clear()
    yield
    clear()


def _record(
    provider: str,
    moment,
    i: int,
    *,
    status=200,
    cost="0.01",
    chain=None,
    model="m",
    session="",
    endpoint="chat.completions",
    prompt=100,
    completion=10,
) -> UsageRecord:
    chain = chain if chain is not None else [{"provider": provider, "model": model, "status": status}]
    return UsageRecord.objects.create(
        request_id=f"{provider}-{i}",
        created_at=moment,
        endpoint=endpoint,
        provider=provider,
        model=model,
        status=status,
        attempts=len(chain),
        attempt_chain=chain,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=5,
        cost_usd=cost,
        session_id=session,
        route="r",
    )


def _history(provider: str) -> list[UsageRecord]:
    """Rows three days, a few hours and a few minutes back: days, hours and the raw tail."""
    moment = now()
    rows = []
    for i, back in enumerate(
        (
            timedelta(days=3, hours=2),
            timedelta(days=3),
            timedelta(days=1, hours=5),
            timedelta(hours=3),
            timedelta(hours=1, minutes=30),
            timedelta(minutes=2),
        )
    ):
        rows.append(_record(provider, moment - back, i, cost=f"0.0{i + 1}", session=f"{provider}-s{i % 2}"))
    rows.append(_record(provider, moment - timedelta(hours=2), 10, status=502, cost="0"))
    return rows


def _raw_totals(provider: str, since) -> dict:
    return (
        UsageRecord.objects.filter(provider=provider, created_at__gte=since)
        .exclude(model="o200k-estimate")
        .aggregate(requests=Count("id"), cost=Sum("cost_usd"), prompt=Sum("prompt_tokens"))
    )


def test_report_numbers_equal_the_raw_records_across_days_hours_and_the_raw_tail(fresh_rollups):
    provider = world.unique("roll")
    _history(provider)
    rollups.rollup_usage()
    assert (
        DailyUsage.objects.filter(provider=provider).exists()
        and HourlyUsage.objects.filter(provider=provider).exists()
    )
    for days in (1, 2, 4, 7):
        f = Filters(start=rollups.floor_hour(now()) - timedelta(days=days), end=now(), provider=provider)
        [row] = aggregate(f)
        raw = _raw_totals(provider, f.start)
        assert (row["requests"], row["prompt_tokens"]) == (raw["requests"], raw["prompt"])
        assert round(row["cost_usd"], 8) == float(raw["cost"])


def test_the_rollup_is_idempotent(fresh_rollups):
    provider = world.unique("idem")
    _history(provider)
    rollups.rollup_usage()
    first = sorted(HourlyUsage.objects.filter(provider=provider).values_list("hour", "requests", "cost_usd"))
    daily = sorted(DailyUsage.objects.filter(provider=provider).values_list("day", "requests", "cost_usd"))
    rollups.rollup_usage()
    RollupState.objects.update(through=rollups.watermark() - timedelta(hours=6))  # re-run over rolled hours
    rollups.rollup_usage()
    assert (
        sorted(HourlyUsage.objects.filter(provider=provider).values_list("hour", "requests", "cost_usd"))
        == first
    )
    assert (
        sorted(DailyUsage.objects.filter(provider=provider).values_list("day", "requests", "cost_usd"))
        == daily
    )


def test_the_rollup_is_current_to_the_last_complete_hour_and_takes_late_rows(fresh_rollups):
    provider = world.unique("late")
    _history(provider)
    rollups.rollup_usage()
    assert rollups.watermark() == rollups.floor_hour(now())
    # A long stream recorded at its end with its start time, in the hour already rolled up.
    late = _record(provider, rollups.watermark() - timedelta(minutes=10), 99, cost="0.5")
    rollups.rollup_usage()
    hour = HourlyUsage.objects.filter(provider=provider, hour=rollups.floor_hour(late.created_at))
    assert hour.aggregate(cost=Sum("cost_usd"))["cost"] >= Decimal("0.5")


def test_a_fallback_is_counted_only_when_another_target_served(fresh_rollups):
    provider = world.unique("fb")
    moment = now() - timedelta(hours=2)
    _record(
        provider,
        moment,
        1,
        chain=[
            {"provider": "other", "model": "x", "status": 502},
            {"provider": provider, "model": "m", "status": 200},
        ],
    )
    _record(
        provider,
        moment,
        2,
        chain=[
            {"provider": provider, "model": "m", "status": 429},
            {"provider": provider, "model": "m", "status": 200},
        ],
    )
    _record(provider, moment, 3, chain=[{"provider": provider, "model": "m", "status": 200}])
    f = Filters(start=moment - timedelta(hours=1), end=now(), provider=provider)
    [raw] = aggregate(f)  # before the rollup: raw rows
    rollups.rollup_usage()
    [rolled] = aggregate(f)
    for row in (raw, rolled):
        assert (row["requests"], row["fallbacks"], row["retries"]) == (3, 1, 1)


def test_count_tokens_estimates_are_neither_requests_nor_spend(fresh_rollups):
    provider = world.unique("est")
    moment = now() - timedelta(hours=2)
    _record(provider, moment, 1, cost="0.25")
    UsageRecord.objects.create(
        request_id=f"{provider}-est",
        created_at=moment,
        endpoint="count_tokens",
        provider="junction",
        model="o200k-estimate",
        status=200,
        prompt_tokens=5000,
        usage_estimated=True,
        user=None,
    )
    f = Filters(start=moment - timedelta(hours=1), end=now())
    before = sum(r["requests"] for r in aggregate(f, ("provider",)) if r["provider"] == "junction")
    rollups.rollup_usage()
    after = sum(r["requests"] for r in aggregate(f, ("provider",)) if r["provider"] == "junction")
    assert before == after == 0
    assert not HourlyUsage.objects.filter(provider="junction").exists()


def test_top_sessions_add_up_from_session_rollups_and_raw_rows(fresh_rollups):
    provider = world.unique("sess")
    rows = _history(provider)
    rollups.rollup_usage()
    f = Filters(start=rollups.floor_hour(now()) - timedelta(days=7), end=now())
    sessions = {s["session_id"]: s for s in top_sessions(f, limit=1000)}
    for name in (f"{provider}-s0", f"{provider}-s1"):
        mine = [r for r in rows if r.session_id == name]
        assert sessions[name]["requests"] == len(mine)
        assert round(sessions[name]["cost_usd"], 8) == float(sum(Decimal(str(r.cost_usd)) for r in mine))


def test_the_rollup_task_bounds_one_pass(fresh_rollups):
    provider = world.unique("bound")
    _history(provider)
    from gateway.tasks import rollup_usage

    assert rollup_usage() <= 24
