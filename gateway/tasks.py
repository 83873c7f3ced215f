from celery import shared_task

from . import rollups


@shared_task
def rollup_usage() -> int:
    """Bring HourlyUsage / DailyUsage / SessionUsage up to the last complete hour
    (beat: every minute; a pass is at most a day of hours, so each run stays short)."""
    return rollups.rollup_usage(max_hours=24)
