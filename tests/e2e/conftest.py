"""End-to-end harness: a real Daphne server on a free loopback port, fake upstreams
on real sockets (tests/conftest.py), and a file SQLite database shared by the test
process (which writes config through the ORM, as the admin would) and the server
(which notices through the config version file, as every gateway process does)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.environment import DATA_DIR, MAX_BODY, ROOT, SERVER_ENV, free_port  # noqa: F401  (re-exported)


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


