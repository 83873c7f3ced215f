"""Reads and aggregates over usage."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import UsageRecord


REPORT_DIMENSIONS = {
    "user": "user__username",
    "key": "key__prefix",
    "team": "user__groups__name",  # a member of two teams counts in both
    "route": "route",
    "provider": "provider",
    "model": "model",
    "day": "day",
}


def usage_report(*, by: str, days: int = 30) -> list[dict]:
    """Spend and tokens grouped by one dimension over the last `days` days, most
    expensive first (by day: newest first). Reads UsageRecord directly, so it is
    current to the last usage flush."""
    if by not in REPORT_DIMENSIONS:
        raise ValueError(f"unknown dimension `{by}` (one of {', '.join(REPORT_DIMENSIONS)})")
    since = timezone.now() - timedelta(days=days)
    column = REPORT_DIMENSIONS[by]
    rows = UsageRecord.objects.filter(created_at__gte=since)
    if by == "day":
        rows = rows.annotate(day=TruncDate("created_at"))
    rows = (rows.values(column)
            .annotate(requests=Count("id"), errors=Count("id", filter=Q(status__gte=400)),
                      fallbacks=Count("id", filter=Q(attempts__gt=1)),
                      prompt_tokens=Sum("prompt_tokens"), completion_tokens=Sum("completion_tokens"),
                      cached_tokens=Sum("cached_tokens"), cost_usd=Sum("cost_usd"))
            .order_by("-day" if by == "day" else "-cost_usd"))
    return [{"name": str(row.pop(column) or "-"), **row, "cost_usd": float(row["cost_usd"] or 0)} for row in rows]


def unpriced_usage(*, days: int = 30, since=None, until=None) -> dict:
    """Requests booked at $0 because no price was known (providers.pricing): shown as a
    warning in the admin and /reports/, never as spend. The last `days`, or since..until."""
    since = since or timezone.now() - timedelta(days=days)
    rows = UsageRecord.objects.filter(created_at__gte=since, price_source="unpriced")
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    totals = rows.aggregate(requests=Count("id"), prompt_tokens=Sum("prompt_tokens"),
                            completion_tokens=Sum("completion_tokens"))
    models = list(rows.values_list("provider", "model").distinct()[:20])
    return {"requests": totals["requests"] or 0, "prompt_tokens": totals["prompt_tokens"] or 0,
            "completion_tokens": totals["completion_tokens"] or 0,
            "models": [f"{p}/{m}" for p, m in models]}
