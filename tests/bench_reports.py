"""Report pages and exports against a large usage table (README § Performance):

    export GATEWAY_DATA_DIR=/tmp/bench DATABASE_URL=sqlite:////tmp/bench/db.sqlite3 ALLOWED_HOSTS=testserver
    python manage.py migrate && python manage.py generate_usage --rows 1000000
    python manage.py rollup_usage && python -m tests.bench_reports

Prints the median of 3 timed runs per page (after one warm-up), and its query count."""

from __future__ import annotations

import os
import statistics
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

PAGES = [
    "/reports/?range=24h",
    "/reports/?range=2d&stack=user",
    "/reports/?range=7d",
    "/reports/?range=30d&by=day",
    "/reports/?range=90d&stack=team&by=team",
    "/reports/?range=30d&user={user}",
    "/reports/?range=30d&team={team}",
    "/reports/?range=30d&provider=anthropic&status=error",
    "/reports/?range=custom&from={from_}&to={to}",
    "/reports/?range=30d&export=series",
    "/reports/?range=30d&export=users",
    "/reports/?range=30d&export=keys",
    "/reports/?range=30d&export=models",
    "/reports/?range=30d&export=providers",
    "/reports/?range=30d&export=sessions",
    "/reports/?range=30d&export=budgets",
    "/reports/?range=30d&by=model&export=by",
    "/reports/requests/?range=30d",
    "/reports/requests/?range=30d&status=error",
    "/reports/requests/?range=30d&user={user}",
    "/reports/requests/?range=30d&model=gpt-5",
    "/reports/requests/?range=24h&export=requests",
    "/reports/sessions/{session}/",
    "/reports/requests/{request}/",
    "/api/reports/overview/?range=30d",
    "/api/usage/?by=day&days=60",
    "/live/",
    "/me/",
    "/admin/",
    "/admin/gateway/usagerecord/",
    "/admin/gateway/usagerecord/?status=error",
    "/admin/gateway/usagerecord/?provider=anthropic",
    "/admin/gateway/usagerecord/?p=500",
]


def main() -> None:
    from django.contrib.auth.models import Group

    from gateway.models import UsageRecord
    from gateway.reports.queries import now

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    sample = UsageRecord.objects.exclude(session_id="").order_by("-id").first()
    today = now().date()
    fill = {
        "user": sample.user_id,
        "team": Group.objects.order_by("id").values_list("id", flat=True).first(),
        "session": sample.session_id,
        "request": sample.request_id,
        "from_": (today.replace(day=1)).isoformat(),
        "to": today.isoformat(),
    }
    print(f"{UsageRecord.objects.count()} usage records")
    pages = sys.argv[1:] or PAGES
    for page in pages:
        url = page.format(**fill)
        client.get(url)
        times = []
        for _ in range(3):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
        print(
            f"{statistics.median(times) * 1000:7.0f} ms {len(queries):3d} queries "
            f"{response.status_code} {page}"
        )


if __name__ == "__main__":
    main()
