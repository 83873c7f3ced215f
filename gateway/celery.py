"""Celery app (Saleor style: settings under the CELERY_ namespace, beat schedule in settings)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")

app = Celery("junction")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
