"""The scaled profile for real: PostgreSQL and Redis (Debian's servers, started by the
fixtures), two gateway processes on one database. One budget holds across both
processes, and usage is recorded exactly once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time

import httpx
import pytest

from . import world
from .conftest import ROOT, SERVER_ENV, GatewayProcess

CHAT = [{"role": "user", "content": "hello"}]


def manage(env: dict, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, input=stdin,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def sql(url: str, query: str) -> str:
    return subprocess.run(["psql", url, "-At", "-c", query], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def deployment(postgres_url, redis_url, fake_openai):
    env = {**os.environ, **SERVER_ENV, "DATABASE_URL": postgres_url, "REDIS_URL": redis_url,
           "GATEWAY_BUDGET_REFRESH_SECONDS": "0.2", "GATEWAY_CLUSTER_SYNC_SECONDS": "0.2",
           "GATEWAY_DATA_DIR": tempfile.mkdtemp(prefix="junction-scaled-")}
    manage(env, "migrate", "--verbosity", "0")
    config = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    config.write(f"""
providers:
  - name: fake
    type: openai
    base_url: {fake_openai.url}/v1
    api_key: sk-test          # the fake, like api.openai.com, refuses a request without a key
    model: mock
    models:
      - {{id: mock, input_price: 0, output_price: 2000}}   # 7 output tokens: $0.014 a request
""")
    config.close()
    manage(env, "import_config", config.name)
    processes = [GatewayProcess({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "GATEWAY_BUDGET_REFRESH_SECONDS",
                                                     "GATEWAY_CLUSTER_SYNC_SECONDS")}
                                | {"GATEWAY_DATA_DIR": tempfile.mkdtemp(prefix="junction-scaled-")})
                 for _ in range(2)]
    yield env, processes
    for p in processes:
        p.stop()


def post(server, key, **headers):
    return httpx.post(server.url + "/v1/chat/completions", json={"model": "fake", "messages": CHAT},
                      headers={"authorization": f"Bearer {key}", **headers}, timeout=30)


def wait_until(predicate, timeout: float = 10) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_one_budget_holds_across_two_processes(deployment):
    env, (a, b) = deployment
    key = manage(env, "issue_key", "--user", "carol", "--budget", "0.02", "--period", "daily", "--quiet").strip()
    assert wait_until(lambda: post(a, key).status_code == 200)  # $0.014 spent, through a
    time.sleep(1)  # flushed, and b's budget refresh has read it
    assert post(b, key).status_code == 200  # 0.014 < 0.02: allowed; now $0.028
    time.sleep(1)
    # Each process alone booked only $0.014: refusing takes the other's spend.
    assert post(a, key).status_code == 429
    assert post(b, key).status_code == 429


def test_usage_is_recorded_once_in_postgres_across_processes(deployment, postgres_url):
    env, servers = deployment
    key = manage(env, "issue_key", "--user", "dana", "--quiet").strip()
    session = world.unique("pg")
    assert wait_until(lambda: post(servers[0], key).status_code == 200 and post(servers[1], key).status_code == 200)

    async def burst():
        async with httpx.AsyncClient(timeout=30) as client:
            async def one(i):
                server = servers[i % 2]
                r = await client.post(server.url + "/v1/chat/completions",
                                      json={"model": "fake", "messages": CHAT, "stream": i % 3 == 0},
                                      headers={"authorization": f"Bearer {key}", "x-session-id": session})
                return r.status_code, r.headers["x-request-id"]
            return await asyncio.gather(*(one(i) for i in range(40)))

    results = asyncio.run(burst())
    assert all(status == 200 for status, _ in results)
    assert wait_until(lambda: sql(postgres_url, f"SELECT count(*) FROM gateway_usagerecord "
                                                f"WHERE session_id = '{session}'") == "40")
    time.sleep(0.5)
    rows = sql(postgres_url, f"SELECT count(DISTINCT request_id), count(*), sum(completion_tokens) "
                             f"FROM gateway_usagerecord WHERE session_id = '{session}'")
    assert rows == "40|40|280"
    ids = set(sql(postgres_url, f"SELECT request_id FROM gateway_usagerecord WHERE session_id = '{session}'")
              .split("\n"))
    assert ids == {rid for _, rid in results}
