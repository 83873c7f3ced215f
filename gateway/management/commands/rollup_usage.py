"""Bring the usage rollups up to date now (Celery beat does it every minute, a day
of hours per run): `manage.py rollup_usage` after importing or generating history."""

import time

from django.core.management.base import BaseCommand

from gateway import rollups


class Command(BaseCommand):
    help = "Roll usage up to the last complete hour (HourlyUsage, DailyUsage, SessionUsage)."

    def handle(self, *args, **options):
        started = time.time()
        hours = rollups.rollup_usage()
        self.stdout.write(
            f"{hours} hours rolled up in {time.time() - started:.1f} s; "
            f"through {rollups.watermark():%Y-%m-%d %H:%M} UTC"
        )
