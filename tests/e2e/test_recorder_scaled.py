"""No lost records and budgets that hold, on real PostgreSQL and Redis (Debian's servers,
started by the fixtures): a NUL byte in a model name, PostgreSQL stopped for 10 s under
load, kill -9 under load, and 50 concurrent streams over two processes against one budget."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from urllib.parse import urlparse

import httpx
import pytest

from .conftest import GatewayProcess
from .test_limits import concurrent_streams
from .test_scaled_profile import manage, sql, wait_until

CHAT = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def scaled(postgres_url, redis_url, fake_openai):
    env = {**os.environ, "DATABASE_URL": postgres_url, "REDIS_URL": redis_url,
           "GATEWAY_BUDGET_REFRESH_SECONDS": "0.2", "GATEWAY_CLUSTER_SYNC_SECONDS": "0.2",
           "GATEWAY_DATA_DIR": tempfile.mkdtemp(prefix="junction-rec-")}
    from tests.environment import SERVER_ENV

    env = {**SERVER_ENV, **env, "DATABASE_URL": postgres_url, "REDIS_URL": redis_url}
    manage(env, "migrate", "--verbosity", "0")
    config = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    config.write(f"""
providers:
  - name: fake
    type: openai
    base_url: {fake_openai.url}/v1
    api_key: sk-test
    model: mock
    models:
      - {{id: mock, input_price: 0, output_price: 2000}}   # 7 output tokens: $0.014 a request
      - {{id: "mock:first_delay=1", input_price: 100, output_price: 2000}}
""")
    config.close()
    manage(env, "import_config", config.name)
    yield env
    os.unlink(config.name)


def server_env(env: dict, data_dir: str | None = None) -> dict:
    return {k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "GATEWAY_BUDGET_REFRESH_SECONDS",
                                "GATEWAY_CLUSTER_SYNC_SECONDS")} | {
        "GATEWAY_DATA_DIR": data_dir or tempfile.mkdtemp(prefix="junction-rec-")}


def chat(client: httpx.Client, server, key: str, session: str, model: str = "fake") -> httpx.Response:
    return client.post(server.url + "/v1/chat/completions", json={"model": model, "messages": CHAT},
                       headers={"authorization": f"Bearer {key}", "x-session-id": session})


def count(postgres_url: str, session: str) -> int:
    return int(sql(postgres_url, f"SELECT count(*) FROM gateway_usagerecord WHERE session_id = '{session}'"))


class Load:
    """Requests in a loop on a thread; remembers the request id of every complete response."""

    def __init__(self, server, key: str, session: str, workers: int = 4) -> None:
        self.done: list[str] = []
        self.failed = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(server, key, session), daemon=True)
                         for _ in range(workers)]
        for t in self._threads:
            t.start()

    def _run(self, server, key, session) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    r = chat(client, server, key, session)
                    if r.status_code == 200 and r.json()["choices"]:  # the whole body arrived
                        self.done.append(r.headers["x-request-id"])
                    else:
                        self.failed += 1
                except (httpx.HTTPError, ValueError):
                    self.failed += 1
                    time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


def pg_ctl(postgres_url: str, data_dir: str, *args: str) -> None:
    import glob

    folder, port = os.path.dirname(data_dir), urlparse(postgres_url).port
    bindir = os.path.dirname(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))[-1])
    subprocess.run(["runuser", "-u", "postgres", "--", f"{bindir}/pg_ctl", "-D", data_dir,
                    "-l", f"{folder}/log", "-o",
                    f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "-w", *args],
                   check=True, stdout=subprocess.DEVNULL)


def test_a_nul_byte_model_name_is_recorded_and_traffic_after_it_too(scaled, postgres_url):
    server = GatewayProcess(server_env(scaled))
    try:
        key = manage(scaled, "issue_key", "--user", "nul", "--quiet").strip()
        session = "nul-byte"
        with httpx.Client(timeout=10) as client:
            bad = chat(client, server, key, session, model="fake\u0000evil")
            assert bad.status_code in (400, 404)
            ok = [chat(client, server, key, session) for _ in range(5)]
        assert all(r.status_code == 200 for r in ok)
        assert wait_until(lambda: count(postgres_url, session) == 6)
        stored = sql(postgres_url, f"SELECT requested_model FROM gateway_usagerecord WHERE request_id = "
                                   f"'{bad.headers['x-request-id']}'")
        assert stored.startswith("fake") and "evil" in stored
    finally:
        server.stop()


def test_postgres_stopped_for_ten_seconds_under_load_loses_nothing(scaled, postgres_url):
    data_dir = tempfile.mkdtemp(prefix="junction-rec-")
    server = GatewayProcess(server_env(scaled, data_dir))
    try:
        key = manage(scaled, "issue_key", "--user", "outage", "--quiet").strip()
        session = "pg-outage"
        with httpx.Client(timeout=10) as client:
            assert wait_until(lambda: chat(client, server, key, session).status_code == 200)
        data = sql(postgres_url, "SHOW data_directory")
        load = Load(server, key, session)
        try:
            time.sleep(1)
            pg_ctl(postgres_url, data, "stop", "-m", "fast")
            stopped = time.time()
            time.sleep(10)
            during = len(load.done)
        finally:
            pg_ctl(postgres_url, data, "start")
            time.sleep(1)
            load.stop()
        assert time.time() - stopped >= 10
        expected = set(load.done)
        assert during > 20  # traffic went on while the database was down (the snapshot is in memory)
        assert wait_until(lambda: count(postgres_url, session) >= len(expected) + 1, timeout=30)
        stored = set(sql(postgres_url, f"SELECT request_id FROM gateway_usagerecord "
                                       f"WHERE session_id = '{session}'").split("\n"))
        assert expected <= stored
        assert sql(postgres_url, f"SELECT count(*) - count(DISTINCT request_id) FROM gateway_usagerecord "
                                 f"WHERE session_id = '{session}'") == "0"
        print(f"postgres outage: {len(expected)} complete responses, {during} of them while it was down, "
              f"{len(stored)} records")
    finally:
        server.stop()


def test_kill_9_under_load_then_restart_loses_no_completed_response(scaled, postgres_url):
    data_dir = tempfile.mkdtemp(prefix="junction-rec-")
    server = GatewayProcess(server_env(scaled, data_dir))
    key = manage(scaled, "issue_key", "--user", "killed", "--quiet").strip()
    session = "kill-9"
    load = Load(server, key, session)
    try:
        time.sleep(2)
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
    finally:
        load.stop()
    expected = set(load.done)
    assert len(expected) > 20
    before_restart = count(postgres_url, session)
    successor = GatewayProcess(server_env(scaled, data_dir))  # same data dir: replays the dead one's log
    try:
        assert wait_until(lambda: count(postgres_url, session) >= len(expected), timeout=20)
        stored = set(sql(postgres_url, f"SELECT request_id FROM gateway_usagerecord "
                                       f"WHERE session_id = '{session}'").split("\n"))
        assert expected <= stored, f"{len(expected - stored)} of {len(expected)} completed responses lost"
        print(f"kill -9: {len(expected)} complete responses, {before_restart} in the database at the kill, "
              f"{len(stored)} after the restart's replay")
    finally:
        successor.stop()


def test_fifty_concurrent_streams_over_two_processes_cannot_overspend_one_budget(scaled, postgres_url):
    servers = [GatewayProcess(server_env(scaled)) for _ in range(2)]
    try:
        key = manage(scaled, "issue_key", "--user", "shared", "--budget", "0.07", "--period", "daily",
                     "--quiet").strip()
        time.sleep(0.5)  # both snapshots carry the budget
        results = concurrent_streams([s.url for s in servers], key, "fake/mock:first_delay=1")
        statuses = [s for s, _ in results]
        admitted = statuses.count(200)
        assert statuses.count(429) == 50 - admitted and 2 <= admitted <= 5, statuses
        ids = "(" + ",".join(f"'{rid}'" for _, rid in results) + ")"
        assert wait_until(lambda: sql(postgres_url, f"SELECT count(*) FROM gateway_usagerecord "
                                                    f"WHERE request_id IN {ids}") == "50")
        spent = float(sql(postgres_url, f"SELECT coalesce(sum(cost_usd), 0) FROM gateway_usagerecord "
                                        f"WHERE request_id IN {ids}"))
        assert spent <= 0.07 + 0.021, (spent, admitted)
        print(f"two processes: {admitted} of 50 admitted, ${spent:.4f} spent of a $0.07 budget")
    finally:
        for s in servers:
            s.stop()


def test_requests_per_minute_are_shared_by_two_processes_with_rate_limit_headers(scaled):
    servers = [GatewayProcess(server_env(scaled)) for _ in range(2)]
    try:
        key = manage(scaled, "issue_key", "--user", "rpm", "--rpm", "4", "--quiet").strip()
        time.sleep(0.5)
        if time.time() % 60 > 50:  # fixed minute windows in Redis: stay inside one
            time.sleep(61 - time.time() % 60)
        with httpx.Client(timeout=10) as client:
            responses = [chat(client, servers[i % 2], key, "rpm") for i in range(6)]
        assert [r.status_code for r in responses] == [200, 200, 200, 200, 429, 429]
        remaining = [r.headers["x-ratelimit-remaining-requests"] for r in responses]
        assert remaining == ["3", "2", "1", "0", "0", "0"]
        assert all(r.headers["x-ratelimit-limit-requests"] == "4" for r in responses)
        assert 1 <= int(responses[-1].headers["retry-after"]) <= 60
    finally:
        for s in servers:
            s.stop()
