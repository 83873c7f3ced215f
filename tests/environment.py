"""The test process's Django: a file SQLite database in a temp dir, migrated once,
shared with the gateway processes the end-to-end tests start (they get the same
SERVER_ENV). Imported first by tests/conftest.py."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(tempfile.mkdtemp(prefix="junction-test-"))
MAX_BODY = 4 * 1024 * 1024

SERVER_ENV = {
    "DJANGO_SETTINGS_MODULE": "gateway.settings",
    "GATEWAY_DATA_DIR": str(DATA_DIR),
    "DATABASE_URL": f"sqlite:///{DATA_DIR / 'test.sqlite3'}",
    "SECRET_KEY": "test-secret-key-not-for-production",
    "GATEWAY_USAGE_FLUSH_SECONDS": "0.05",
    # The writer runs at idle priority (the default); on a test machine whose cores the suite
    # keeps busy, the guard raises it after this lag instead of 5 s (gateway/usage.py).
    "GATEWAY_USAGE_MAX_LAG_SECONDS": "0.5",
    "GATEWAY_MAX_BODY_BYTES": str(MAX_BODY),
    "CELERY_BROKER_URL": "memory://",
    "LOG_LEVEL": "WARNING",
    "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
}
os.environ.update(SERVER_ENV)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


