from celery import shared_task

from .selectors import usage_rollup


@shared_task
def rollup_usage(days: int = 2) -> int:
    """Recompute DailyUsage for the last `days` days from UsageRecord."""
    return usage_rollup(days=days)
