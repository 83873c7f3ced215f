"""Django for the routing tests that need a database (models, admin, health task):
a file SQLite database in a temp dir of its own, migrated once. When another
conftest (tests/e2e) has already set Django up in this run, its settings stand:
a process configures Django once. The pure modules under test import no Django
(tests/routing/test_purity.py checks that in a clean interpreter)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]

if not settings.configured:
    DATA_DIR = Path(tempfile.mkdtemp(prefix="junction-routing-test-"))
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "gateway.settings",
        "GATEWAY_DATA_DIR": str(DATA_DIR),
        "DATABASE_URL": f"sqlite:///{DATA_DIR / 'test.sqlite3'}",
        "SECRET_KEY": "test-secret-key-not-for-production",
        "CELERY_BROKER_URL": "filesystem://",
        "LOG_LEVEL": "WARNING",
    })

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0)


@pytest.fixture(scope="session")
def fake_openai():
    from tests.fakes.openai import FakeOpenAI

    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_anthropic():
    from tests.fakes.anthropic import FakeAnthropic

    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_ollama():
    from tests.fakes.ollama import FakeOllama

    server = FakeOllama().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_azure():
    from tests.fakes.azure import FakeAzure

    server = FakeAzure().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _reset_fakes(request):
    for name in ("fake_openai", "fake_anthropic", "fake_ollama", "fake_azure"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()
    yield
