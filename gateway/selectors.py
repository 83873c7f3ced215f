"""Reads and aggregates over usage."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from .models import UsageRecord


def unpriced_usage(*, days: int = 30, since=None, until=None, cap: int = 10_000) -> dict:
    """Requests booked at $0 because no price was known (providers.pricing): shown as a
    warning in the admin and /reports/, never as spend. The last `days`, or since..until.
    Reads at most `cap` rows (indexed on price_source; no count over the table):
    `more` says the figures stop there."""
    since = since or timezone.now() - timedelta(days=days)
    rows = UsageRecord.objects.filter(price_source="unpriced", created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    newest_first = rows.order_by("-created_at")
    found = list(newest_first.values_list("prompt_tokens", "completion_tokens", "provider", "model")[:cap + 1])
    more = len(found) > cap
    found = found[:cap]
    models = list(dict.fromkeys(f"{p}/{m}" for _, _, p, m in found))  # the most recently seen first
    return {"requests": len(found), "more": more, "prompt_tokens": sum(r[0] for r in found),
            "completion_tokens": sum(r[1] for r in found), "models": models[:20]}
