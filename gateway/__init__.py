# The Celery app is loaded with Django so `task.delay()` from any process uses it.
from .celery import app as celery_app

__all__ = ["celery_app"]
