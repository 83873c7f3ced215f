"""End-to-end harness: a real Daphne server on a free loopback port, fake upstreams
on real sockets, and a file SQLite database shared by the test process (which
writes config through the ORM, as the admin would) and the server (which notices
through the config version file, as every gateway process does)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(tempfile.mkdtemp(prefix="junction-test-"))
MAX_BODY = 4 * 1024 * 1024

SERVER_ENV = {
    "DJANGO_SETTINGS_MODULE": "gateway.settings",
    "GATEWAY_DATA_DIR": str(DATA_DIR),
    "DATABASE_URL": f"sqlite:///{DATA_DIR / 'test.sqlite3'}",
    "SECRET_KEY": "test-secret-key-not-for-production",
    "GATEWAY_USAGE_FLUSH_SECONDS": "0.05",
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


class GatewayProcess:
    def __init__(self, env: dict | None = None) -> None:
        self.port = free_port()
        self.log = open(DATA_DIR / f"daphne-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.daphne_main", "-b", "127.0.0.1", "-p", str(self.port), "--verbosity", "0",
             "gateway.asgi:application"],
            cwd=ROOT, env={**os.environ, **SERVER_ENV, **(env or {})}, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/health/live", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("gateway did not start: " + (DATA_DIR / f"daphne-{self.port}.log").read_text())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        self.log.flush()
        return (DATA_DIR / f"daphne-{self.port}.log").read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def gateway():
    server = GatewayProcess()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_openai():
    """OpenAI: chat completions, embeddings, models and the Responses API."""
    from tests.fakes.openai_responses import FakeOpenAIResponses

    server = FakeOpenAIResponses().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_anthropic():
    from tests.fakes.anthropic import FakeAnthropic

    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _reset_fakes(request):
    for name in ("fake_openai", "fake_anthropic", "fake_responses", "fake_ollama", "fake_bedrock", "fake_azure",
                 "fake_openrouter"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()
    yield


@pytest.fixture(scope="session")
def fake_ollama():
    from tests.fakes.ollama import FakeOllama

    server = FakeOllama().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_bedrock():
    """Verifies SigV4 for tests.fakes.bedrock.ACCESS_KEY / SECRET_KEY in REGION."""
    from tests.fakes.bedrock import FakeBedrock

    server = FakeBedrock().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_azure():
    """Expects tests.fakes.azure.API_KEY in `api-key`."""
    from tests.fakes.azure import FakeAzure

    server = FakeAzure().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_openrouter():
    from tests.fakes.openrouter import FakeOpenRouter

    server = FakeOpenRouter().start()
    yield server
    server.stop()
