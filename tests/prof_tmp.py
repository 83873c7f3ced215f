import os, sys, time, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
django.setup()
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.db import connection
from django.contrib.auth import get_user_model
u = get_user_model().objects.get_or_create(username="bench-admin", defaults={"is_staff": True, "is_superuser": True})[0]
c = Client(); c.force_login(u)
url = sys.argv[1]
c.get(url)
import cProfile, pstats
with CaptureQueriesContext(connection) as q:
    pr = cProfile.Profile(); pr.enable(); r = c.get(url); pr.disable()
for x in sorted(q.captured_queries, key=lambda x: -float(x["time"]))[:8]:
    print(x["time"], x["sql"][:300])
pstats.Stats(pr).sort_stats("tottime").print_stats(30)
