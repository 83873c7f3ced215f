import os, sys, time, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
django.setup()
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.db import connection
from django.contrib.auth import get_user_model
u, _ = get_user_model().objects.get_or_create(username="bench-admin", defaults={"is_staff": True, "is_superuser": True})
c = Client(); c.force_login(u)
urls = sys.argv[1:] or ["/reports/?range=7d", "/reports/?range=24h", "/reports/?range=30d&by=day", "/reports/?range=90d&stack=team&by=team",
        "/reports/?range=30d&export=users", "/reports/?range=30d&by=provider&export=by", "/reports/requests/?range=30d",
        "/reports/requests/?range=30d&status=error", "/reports/requests/?range=30d&user=5",
        "/api/reports/overview/?range=30d", "/api/usage/?by=day&days=60", "/live/", "/admin/gateway/usagerecord/",
        "/admin/gateway/usagerecord/?status__exact=502", "/admin/", "/me/"]
for url in urls:
    c.get(url)  # warm
    t = time.perf_counter()
    with CaptureQueriesContext(connection) as q:
        r = c.get(url)
    dt = time.perf_counter() - t
    print(f"{dt*1000:8.0f} ms {len(q):4d} queries {r.status_code} {url}")
    if r.status_code >= 400 or r.status_code == 302 and 'login' in r.get('location',''):
        print(r.content[:2000])
