"""Retention. Expired stored Responses conversations (StoredResponse, the conversation store
without Redis) are deleted by a beat task in small batches (reads ignore them already).

UsageRecord retention: rows older than GATEWAY_USAGE_RETENTION_DAYS are deleted by
a beat task (hourly), in small batches, once the DailyUsage rollup covers their day.

"Covers" is checked, not assumed: a day's rows go only when the day is older than both
the retention period and the newest DailyUsage day (the rollup still rewrites the
newest days), and the day's DailyUsage request count equals its UsageRecord count. A
day the rollup missed (beat down for a while) is kept and logged. Reports over longer
periods read DailyUsage.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Min, Sum
from django.utils import timezone

log = logging.getLogger("junction.retention")

BATCH = 1000  # rows per DELETE: short transactions, SQLite's writer lock held briefly
MAX_BATCHES = 200  # per run: a backlog is worked off over several runs
# gateway.tasks.rollup_usage rebuilds DailyUsage of the last 2 days from UsageRecord:
# rows of those days must stay, or the next rollup would rebuild their day from nothing.
ROLLUP_REWRITES_DAYS = 2


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = timezone.make_aware(datetime.combine(day, time.min))
    return start, start + timedelta(days=1)


def delete_old_usage_rows(days: int | None = None, *, batch: int = BATCH, max_batches: int = MAX_BATCHES,
                          today: date | None = None) -> int:
    """Delete covered UsageRecord rows older than `days` days; returns the number deleted."""
    from .models import DailyUsage, UsageRecord

    days = settings.GATEWAY_USAGE_RETENTION_DAYS if days is None else days
    if days <= 0:
        return 0
    today = today or timezone.localdate()
    newest_rollup = DailyUsage.objects.order_by("-day").values_list("day", flat=True).first()
    oldest = UsageRecord.objects.aggregate(oldest=Min("created_at"))["oldest"]
    if newest_rollup is None or oldest is None:
        return 0
    last_day = min(today - timedelta(days=days), newest_rollup - timedelta(days=1),
                   today - timedelta(days=ROLLUP_REWRITES_DAYS))
    deleted, batches = 0, 0
    day = timezone.localtime(oldest).date()
    while day <= last_day and batches < max_batches:
        start, end = _day_bounds(day)
        rows = UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        count = rows.count()
        if count:
            rolled = DailyUsage.objects.filter(day=day).aggregate(n=Sum("requests"))["n"] or 0
            if rolled != count:
                log.warning("usage retention: %s not covered by the rollup (%d rows, %d rolled up); kept",
                            day, count, rolled)
            else:
                while batches < max_batches:
                    ids = list(rows.order_by("id").values_list("id", flat=True)[:batch])
                    if not ids:
                        break
                    with transaction.atomic():
                        deleted += UsageRecord.objects.filter(id__in=ids).delete()[0]
                    batches += 1
        day += timedelta(days=1)
    if deleted:
        log.info("usage retention: deleted %d rows older than %d days", deleted, days)
    return deleted


@shared_task
def delete_old_usage() -> int:
    return delete_old_usage_rows()


def delete_expired_responses(*, batch: int = BATCH, max_batches: int = MAX_BATCHES,
                             now: datetime | None = None) -> int:
    """Delete StoredResponse rows past their expiry, `batch` at a time; returns the number deleted."""
    from .models import StoredResponse

    now = now or timezone.now()
    deleted = 0
    for _ in range(max_batches):
        ids = list(StoredResponse.objects.filter(expires_at__lte=now).order_by("expires_at")
                   .values_list("id", flat=True)[:batch])
        if not ids:
            break
        with transaction.atomic():
            deleted += StoredResponse.objects.filter(id__in=ids).delete()[0]
    if deleted:
        log.info("stored responses: deleted %d expired", deleted)
    return deleted


@shared_task
def delete_expired_stored_responses() -> int:
    return delete_expired_responses()
