"""`manage.py serve --workers N`: the same scenarios on one worker and on two workers of
one `serve` process (one socket, gateway.management.commands.serve), without and with
Redis. Each scenario holds two keep-alive clients: a connection stays with the worker
that accepted it, and the request id's prefix names the worker, so "seen by one worker,
then asked of the other" is deterministic.

Every scenario runs on one worker and on two, without and with Redis: the state they
need is shared (RPM/TPM windows and circuits through the data dir or Redis, budgets and
stored Responses conversations through the database or Redis)."""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from . import world
from .conftest import DATA_DIR, ROOT, SERVER_ENV, free_port

CHAT = [{"role": "user", "content": "hello"}]


class ServeProcess:
    """`manage.py serve` as an operator runs it, on a free loopback port."""

    def __init__(self, args: list[str], env: dict | None = None) -> None:
        self.port = free_port()
        self.log_path = DATA_DIR / f"serve-{self.port}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port",
                                      str(self.port), *args],
                                     cwd=ROOT, env={**os.environ, **SERVER_ENV, **(env or {})},
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 40
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/health/live", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("serve did not start: " + self.logs())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def workers(self) -> list[int]:
        out = subprocess.run(["ps", "--ppid", str(self.proc.pid), "-o", "pid=,args="], capture_output=True,
                             text=True).stdout
        return [int(line.split()[0]) for line in out.splitlines() if "gateway.daphne_main" in line]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def worker_of(response: httpx.Response) -> str:
    return response.headers["x-request-id"][:20]  # "req_" + the process's random prefix


def sticky_clients(url: str, count: int) -> list[httpx.Client]:
    """`count` keep-alive clients on distinct workers (all on the one worker if there is one)."""
    found: dict[str, httpx.Client] = {}
    spare: list[httpx.Client] = []
    for _ in range(200):
        client = httpx.Client(base_url=url, timeout=30)
        worker = worker_of(client.post("/v1/chat/completions", json={}))  # 401, but names the worker
        if worker in found:
            spare.append(client)
        else:
            found[worker] = client
        if len(found) == count:
            break
    clients = list(found.values())
    while len(clients) < count and spare:  # one worker: several clients on it
        clients.append(spare.pop())
    for client in spare:
        client.close()
    assert len(clients) == count, "could not reach every worker"
    return clients


SETUPS = [pytest.param((1, False), id="1-worker"), pytest.param((2, False), id="2-workers"),
          pytest.param((1, True), id="1-worker-redis"), pytest.param((2, True), id="2-workers-redis")]


@pytest.fixture(scope="module", params=SETUPS)
def served(request):
    workers, redis = request.param
    env = {"GATEWAY_BUDGET_REFRESH_SECONDS": "0.2", "GATEWAY_CLUSTER_SYNC_SECONDS": "0.1"}
    if redis:
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    server = ServeProcess(["--workers", str(workers), "--no-celery"], env)
    a, b = sticky_clients(server.url, 2)
    probe = {"url": "/v1/chat/completions", "json": {}}
    assert (worker_of(a.post(**probe)) != worker_of(b.post(**probe))) == (workers == 2)
    yield workers, redis, server, a, b
    a.close()
    b.close()
    assert server.stop() == 0


def chat(client: httpx.Client, key: str, model: str) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": model, "messages": CHAT},
                       headers={"authorization": f"Bearer {key}"})


def test_serve_starts_n_workers_on_one_socket_and_says_what_is_shared(served):
    workers, redis, server, a, b = served
    assert len(server.workers()) == workers
    logs = server.logs()
    assert f"listening on {server.url}" in logs
    if workers == 2:
        shared, per_worker = logs.split("Per worker:")
        for what in ("circuit breakers", "stored Responses conversations", "RPM/TPM windows"):
            assert what in shared and what not in per_worker


def test_a_budget_spent_through_one_worker_is_refused_by_the_other(served, fake_openai):
    workers, redis, server, a, b = served
    upstream = world.provider(fake_openai.url + "/v1")
    world.price(upstream, "mock", input_price=0, output_price=2000)  # 7 output tokens: $0.014
    key = world.key_issue(username="budget", budget_usd=0.02, budget_period="daily")[1]
    time.sleep(0.5)  # the new key and price in both workers' snapshots
    assert chat(a, key, upstream.name).status_code == 200  # $0.014
    time.sleep(1)  # written, and the other worker's budget refresh has read it
    assert chat(b, key, upstream.name).status_code == 200  # 0.014 < 0.02: allowed; now $0.028
    time.sleep(1)
    assert chat(a, key, upstream.name).status_code == 429
    assert chat(b, key, upstream.name).status_code == 429


def clear_of_a_minute_boundary() -> None:
    """Redis counts per calendar minute: a scenario must not straddle two of them."""
    if time.time() % 60 > 55:
        time.sleep(60 - time.time() % 60 + 0.1)


def test_an_rpm_limit_counts_the_requests_of_every_worker(served, fake_openai, request):
    workers, redis, server, a, b = served
    upstream = world.provider(fake_openai.url + "/v1")
    key = world.key_issue(username="rpm", rpm_limit=2)[1]
    time.sleep(0.5)
    clear_of_a_minute_boundary()
    assert chat(a, key, upstream.name).status_code == 200
    assert chat(a, key, upstream.name).status_code == 200
    refused = chat(b, key, upstream.name)
    assert refused.status_code == 429 and refused.headers["x-ratelimit-remaining-requests"] == "0"


def test_tokens_booked_on_one_worker_make_the_other_refuse(served, fake_openai):
    workers, redis, server, a, b = served
    upstream = world.provider(fake_openai.url + "/v1")
    key = world.key_issue(username=world.unique("tpm"), tpm_limit=10)[1]
    time.sleep(0.5)
    clear_of_a_minute_boundary()
    first = chat(a, key, upstream.name)  # more than 10 tokens
    assert first.status_code == 200 and first.headers["x-ratelimit-remaining-tokens"] == "10"
    time.sleep(0.3)  # booked when the request settles (in the background with Redis)
    refused = chat(b, key, upstream.name)
    assert refused.status_code == 429, refused.text
    assert "10 tokens per minute reached for this key." in refused.json()["error"]["message"]
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"


def test_a_users_limits_count_the_requests_and_tokens_of_all_their_keys_on_every_worker(served, fake_openai):
    workers, redis, server, a, b = served
    upstream = world.provider(fake_openai.url + "/v1")
    name = world.unique("user-limits")
    laptop, desktop = world.key_issue(username=name)[1], world.key_issue(username=name)[1]
    world.user_limits(name, rpm_limit=2)
    time.sleep(0.5)
    clear_of_a_minute_boundary()
    assert chat(a, laptop, upstream.name).headers["x-ratelimit-remaining-requests"] == "1"
    assert chat(b, desktop, upstream.name).headers["x-ratelimit-remaining-requests"] == "0"
    refused = chat(a, desktop, upstream.name)
    assert refused.status_code == 429 and "reached for this key's user" in refused.json()["error"]["message"]

    name = world.unique("user-tokens")
    laptop, desktop = world.key_issue(username=name)[1], world.key_issue(username=name)[1]
    world.user_limits(name, tpm_limit=10)
    time.sleep(0.5)
    clear_of_a_minute_boundary()
    assert chat(a, laptop, upstream.name).status_code == 200
    time.sleep(0.3)
    refused = chat(b, desktop, upstream.name)
    assert refused.status_code == 429 and "10 tokens per minute reached for this key's user" in refused.text


def test_a_circuit_opened_by_failures_seen_by_one_worker_is_open_in_the_other(served, fake_openai, request):
    workers, redis, server, a, b = served
    key = world.alice_key()
    broken = world.provider(fake_openai.url + "/v1")
    healthy = world.provider(fake_openai.url + "/v1")
    name = world.unique("workers-cb")
    world.route(name, [(broken, "mock:status=500"), (healthy, "mock")])
    time.sleep(0.5)
    for _ in range(5):  # five consecutive failures, all seen by a, open the circuit
        assert chat(a, key, name).headers["x-gateway-attempts"] == "2"
    assert chat(a, key, name).headers["x-gateway-attempts"] == "1"
    time.sleep(0.5)  # the cluster link syncs every 0.1 s
    # Once only: b's own failures would open its circuit by themselves.
    r = chat(b, key, name)
    assert r.headers["x-gateway-attempts"] == "1" and r.headers["x-gateway-provider"] == healthy.name


def test_a_response_stored_through_one_worker_continues_on_the_other(served, fake_openai, request):
    workers, redis, server, a, b = served
    upstream = world.provider(fake_openai.url + "/v1")
    key = world.alice_key()
    time.sleep(0.5)
    headers = {"authorization": f"Bearer {key}"}
    first = a.post("/v1/responses", json={"model": upstream.name, "input": "Remember 42."}, headers=headers)
    assert first.status_code == 200
    second = b.post("/v1/responses", json={"model": upstream.name, "input": "What number?",
                                           "previous_response_id": first.json()["id"]}, headers=headers)
    assert second.status_code == 200, second.text


def test_serve_spreads_connections_restarts_a_crashed_worker_and_logs_json(fake_openai):
    upstream = world.provider(fake_openai.url + "/v1")
    key = world.alice_key()
    server = ServeProcess(["--workers", "2", "--no-celery", "--log-format", "json"])
    try:
        r = httpx.post(server.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                       json={"model": upstream.name, "messages": CHAT})
        assert r.status_code == 200
        request_id = r.headers["x-request-id"]
        deadline = time.time() + 5
        while request_id not in server.logs() and time.time() < deadline:
            time.sleep(0.1)
        [line] = [line for line in server.logs().splitlines() if request_id in line]
        entry = json.loads(line)
        assert entry["user"] == "alice" and entry["key_prefix"] and key.startswith(entry["key_prefix"])
        assert (entry["provider"], entry["model"], entry["status"], entry["completion_tokens"]) == \
            (upstream.name, "mock", 200, 7)
        assert key not in server.logs()

        # A burst of keep-alive connections is spread over the workers (SO_REUSEPORT), not all
        # accepted by whichever worker woke first.
        clients = [httpx.Client(base_url=server.url, timeout=30) for _ in range(32)]
        with ThreadPoolExecutor(32) as pool:
            spread = Counter(pool.map(lambda c: worker_of(c.post("/v1/chat/completions", json={})), clients))
        for client in clients:
            client.close()
        assert len(spread) == 2 and min(spread.values()) >= 4, spread

        crashed = server.workers()[0]
        os.kill(crashed, signal.SIGKILL)
        deadline = time.time() + 15
        while time.time() < deadline and (crashed in server.workers() or len(server.workers()) < 2):
            time.sleep(0.2)
        assert len(server.workers()) == 2 and crashed not in server.workers()
        assert f"(pid {crashed}) exited with -9; restarting in 1 s" in server.logs()
        deadline = time.time() + 15
        seen = set()
        while time.time() < deadline and len(seen) < 2:  # both workers serve again
            seen.add(worker_of(httpx.post(server.url + "/v1/chat/completions", json={})))
        assert len(seen) == 2
    finally:
        assert server.stop() == 0
