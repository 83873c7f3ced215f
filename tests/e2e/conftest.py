"""End-to-end harness: a real Daphne server on a free loopback port, fake upstreams
on real sockets (tests/conftest.py), and a file SQLite database shared by the test
process (which writes config through the ORM, as the admin would) and the server
(which notices through the config version file, as every gateway process does)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
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




def _required_binary(path: str | None, what: str) -> str:
    """System servers the scaled-profile tests need: CI installs them (.ci/run); a
    developer machine without them skips those tests."""
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{what} must be installed in CI (.ci/run installs it)")
        pytest.skip(f"{what} is not installed")
    return path


def _wait_for_port(port: int, timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


@pytest.fixture(scope="session")
def redis_url():
    binary = _required_binary(shutil.which("redis-server"), "redis-server")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_port(port)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)




@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL cluster (Debian's packages) on a free port, run as the
    `postgres` user (the server refuses root), fsync off."""
    import glob

    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = _required_binary(bins[-1] if bins else None, "postgresql")
    bindir = os.path.dirname(initdb)
    folder = tempfile.mkdtemp(prefix="junction-pg-")
    shutil.chown(folder, "postgres")
    port = free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(as_postgres + [initdb, "-D", f"{folder}/data", "-A", "trust", "-U", "postgres"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(as_postgres + [f"{bindir}/pg_ctl", "-D", f"{folder}/data", "-l", f"{folder}/log", "-o",
                                  f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, stdout=subprocess.DEVNULL)
    try:
        _wait_for_port(port)
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c",
                        "CREATE DATABASE junction"], check=True, stdout=subprocess.DEVNULL)
        yield f"postgres://postgres@127.0.0.1:{port}/junction"
    finally:
        subprocess.run(as_postgres + [f"{bindir}/pg_ctl", "-D", f"{folder}/data", "stop", "-m", "immediate"],
                       stdout=subprocess.DEVNULL)
