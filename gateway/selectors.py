"""Reads and aggregates over usage."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import DailyUsage, UsageRecord


@transaction.atomic
def usage_rollup(*, days: int = 2) -> int:
    """Rebuild the DailyUsage rows of the last `days` days (idempotent)."""
    since = (timezone.now() - timedelta(days=days - 1)).date()
    rows = (UsageRecord.objects.filter(created_at__date__gte=since)
            .annotate(day=TruncDate("created_at"))
            .values("day", "user_id", "key_id", "route", "provider", "model")
            .annotate(requests=Count("id"), errors=Count("id", filter=Q(status__gte=400)),
                      prompt_tokens=Sum("prompt_tokens"), completion_tokens=Sum("completion_tokens"),
                      cached_tokens=Sum("cached_tokens"), cost_usd=Sum("cost_usd")))
    DailyUsage.objects.filter(day__gte=since).delete()
    DailyUsage.objects.bulk_create([DailyUsage(**row) for row in rows])
    return len(rows)
