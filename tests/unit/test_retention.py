"""UsageRecord retention (gateway.retention): only days older than the retention and
covered by the DailyUsage rollup are deleted, in batches; anything else stays."""

from __future__ import annotations

import itertools
from datetime import datetime, time, timedelta

from django.utils import timezone

from gateway.models import DailyUsage, UsageRecord
from gateway.retention import delete_old_usage_rows

_ids = itertools.count()


def rows_on(day, count: int, tag: str) -> list[str]:
    at = timezone.make_aware(datetime.combine(day, time(12)))
    ids = [f"retention-{tag}-{next(_ids)}" for _ in range(count)]
    UsageRecord.objects.bulk_create([UsageRecord(request_id=i, created_at=at, endpoint="chat", status=200)
                                     for i in ids])
    return ids


def test_deletes_covered_days_past_the_retention_in_batches_and_keeps_the_rest():
    today = timezone.localdate()
    base = today - timedelta(days=900)  # far from any other test's rows
    covered = rows_on(base, 5, "covered") + rows_on(base + timedelta(days=1), 3, "covered")
    DailyUsage.objects.create(day=base, requests=5, route="retention")
    DailyUsage.objects.create(day=base + timedelta(days=1), requests=3, route="retention")
    missed = rows_on(base + timedelta(days=2), 4, "missed")  # the rollup missed this day
    DailyUsage.objects.create(day=base + timedelta(days=2), requests=1, route="retention")
    recent = rows_on(today - timedelta(days=3), 2, "recent")  # younger than the retention
    DailyUsage.objects.create(day=today - timedelta(days=3), requests=2, route="retention")
    DailyUsage.objects.create(day=today - timedelta(days=1), requests=0, route="retention")
    try:
        # Batches of 2, at most 3 per run: a backlog takes several runs.
        assert delete_old_usage_rows(30, batch=2, max_batches=3) == 5  # the first day: 2 + 2 + 1
        assert delete_old_usage_rows(30, batch=2, max_batches=3) == 3
        assert delete_old_usage_rows(30, batch=2, max_batches=3) == 0
        assert not UsageRecord.objects.filter(request_id__in=covered).exists()
        assert UsageRecord.objects.filter(request_id__in=missed + recent).count() == 6
        assert delete_old_usage_rows(0) == 0  # 0: keep for ever
    finally:
        UsageRecord.objects.filter(request_id__startswith="retention-").delete()
        DailyUsage.objects.filter(route="retention").delete()


def test_a_day_without_rollup_rows_is_kept():
    today = timezone.localdate()
    ids = rows_on(today - timedelta(days=800), 2, "unrolled")
    DailyUsage.objects.create(day=today - timedelta(days=1), requests=0, route="retention")
    try:
        delete_old_usage_rows(30)
        assert UsageRecord.objects.filter(request_id__in=ids).count() == 2
    finally:
        UsageRecord.objects.filter(request_id__in=ids).delete()
        DailyUsage.objects.filter(route="retention").delete()


def test_the_beat_schedules_the_retention_task():
    from django.conf import settings

    from gateway.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["usage-retention"]
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
