"""Budget periods (UTC) and the in-memory ledger's roll-over, with fixed clocks."""

from __future__ import annotations

import calendar
from datetime import datetime

from gateway.limits import BudgetInfo, Limits, period_start
from routing.table import EMPTY, KeyInfo

import dataclasses


def ts(text: str) -> float:
    return float(calendar.timegm(datetime.fromisoformat(text).timetuple()))


def test_periods_start_at_midnight_monday_and_the_first_of_the_month_utc():
    now = ts("2026-11-25T17:30:00")  # a Wednesday
    assert period_start("daily", now) == ts("2026-11-25T00:00:00")
    assert period_start("weekly", now) == ts("2026-11-23T00:00:00")
    assert period_start("monthly", now) == ts("2026-11-01T00:00:00")
    assert period_start("total", now) == 0.0


def test_spend_rolls_over_with_the_period():
    budget = BudgetInfo(1, "key", 7, amount=1.0, period="daily", hard=True,
                        period_start=ts("2026-11-25T00:00:00"), spent_at_build=0.6)
    snapshot = dataclasses.replace(EMPTY, version="v1", budgets={("key", 7): (budget,)})
    key = KeyInfo(id=7, user_id=3, username="kim", prefix="jk-x")
    limits = Limits()
    limits._budgets(snapshot, key)  # takes the snapshot's database totals
    today, tomorrow = ts("2026-11-25T12:00:00"), ts("2026-11-26T00:00:01")
    limits.settle(snapshot, key, cost=0.5, tokens=0, now=today)
    assert limits.spent(budget, today) == 1.1
    assert limits.spent(budget, tomorrow) == 0.0
    assert limits.admit(snapshot, key, now=tomorrow) is None
