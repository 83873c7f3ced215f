"""Scaled profile: several gateway processes share circuit breakers and the config
version through a real Redis server (Debian's redis-server, started here)."""

from __future__ import annotations

import tempfile
import time

import httpx
import pytest
from django.test import override_settings

from gateway.services import key_revoke

from . import world
from .conftest import GatewayProcess

CHAT = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def pair(redis_url):
    """Two gateway processes, each with its own data directory (no shared version file)."""
    env = {"REDIS_URL": redis_url, "GATEWAY_CLUSTER_SYNC_SECONDS": "0.1", "CELERY_BROKER_URL": "memory://"}
    a = GatewayProcess({**env, "GATEWAY_DATA_DIR": tempfile.mkdtemp(prefix="junction-a-")})
    b = GatewayProcess({**env, "GATEWAY_DATA_DIR": tempfile.mkdtemp(prefix="junction-b-")})
    yield a, b
    a.stop()
    b.stop()


def post(server, key, model):
    return httpx.post(server.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": model, "messages": CHAT}, timeout=30)


def test_a_circuit_opened_by_one_process_is_open_in_the_other(pair, fake_openai):
    a, b = pair
    key = world.alice_key()
    broken = world.provider(fake_openai.url + "/v1")
    healthy = world.provider(fake_openai.url + "/v1")
    name = world.unique("shared-cb")
    world.route(name, [(broken, "mock:status=500"), (healthy, "mock")])
    post(b, key, name)  # b has served the route once with the circuit closed
    for _ in range(5):
        assert post(a, key, name).headers["x-gateway-attempts"] == "2"
    deadline = time.time() + 5
    while time.time() < deadline:
        r = post(b, key, name)
        if r.headers["x-gateway-attempts"] == "1":
            break
        time.sleep(0.2)
    assert r.headers["x-gateway-attempts"] == "1" and r.headers["x-gateway-provider"] == healthy.name


def test_a_revocation_reaches_a_process_that_does_not_share_the_version_file(pair, redis_url, fake_openai):
    a, b = pair
    with override_settings(REDIS_URL=redis_url):  # as an admin process of this deployment would be
        upstream = world.provider(fake_openai.url + "/v1")
        key = world.alice_key()
    deadline = time.time() + 5
    while time.time() < deadline and post(b, key, upstream.name).status_code != 200:
        time.sleep(0.1)
    assert post(b, key, upstream.name).status_code == 200
    with override_settings(REDIS_URL=redis_url):
        assert key_revoke(key=key) == 1
    deadline = time.time() + 5
    while time.time() < deadline and post(b, key, upstream.name).status_code == 200:
        time.sleep(0.1)
    assert post(b, key, upstream.name).status_code == 401
