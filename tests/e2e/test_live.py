"""Live view: usage events over the /ws/live websocket, in one process (in-memory channel
layer) and across processes through a real redis-server (channels-redis)."""

from __future__ import annotations

import asyncio
import tempfile
import time

import aiohttp
import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from . import world
from .conftest import GatewayProcess

CHAT = [{"role": "user", "content": "hello"}]


def _session_cookie(username: str, staff: bool) -> str:
    """A logged-in user; `staff`: one who may view spend (staff + gateway.view_spend)."""
    from django.contrib.auth.models import Permission

    user, _ = get_user_model().objects.get_or_create(username=username, defaults={"is_staff": staff})
    if staff:
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label="gateway", codename="view_spend")
        )
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def _watch(server, cookie: str, trigger, request_id_of, timeout: float = 10.0) -> dict:
    """Connect to `server`'s websocket, run `trigger()` (in a thread) once connected and
    return the usage event of the request it made."""
    headers = {"Cookie": f"sessionid={cookie}", "Origin": server.url}
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(server.url.replace("http", "ws") + "/ws/live", headers=headers) as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello["type"] == "hello"
            response = None
            deadline = time.time() + timeout
            while time.time() < deadline:
                # Remote watchers are noticed within a poll interval: repeat the request until seen.
                response = await asyncio.to_thread(trigger)
                wanted = request_id_of(response)
                try:
                    while True:
                        message = await ws.receive_json(timeout=1.5)
                        if message.get("type") == "usage" and message["event"]["request_id"] == wanted:
                            return message["event"]
                except asyncio.TimeoutError:
                    continue
    raise AssertionError("no live event for the request")


def _post(server, key, model):
    return httpx.post(
        server.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": model, "messages": CHAT},
        timeout=30,
    )


def test_a_request_shows_up_on_the_live_view_of_its_process(gateway, fake_openai):
    upstream = world.provider(fake_openai.url + "/v1")
    key = world.alice_key()
    cookie = _session_cookie("live-staff", staff=True)
    event = asyncio.run(
        _watch(
            gateway, cookie, lambda: _post(gateway, key, upstream.name), lambda r: r.headers["x-request-id"]
        )
    )
    assert event["provider"] == upstream.name and event["status"] == 200 and event["user"] == "alice"
    assert event["prompt_tokens"] > 0 and event["latency_ms"] > 0


def test_a_developer_cannot_watch(gateway):
    cookie = _session_cookie("live-dev", staff=False)

    async def connect(headers):
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(
                    gateway.url.replace("http", "ws") + "/ws/live", headers=headers
                ):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:  # closed before accept: the handshake is refused
                return exc.status

    assert asyncio.run(connect({"Cookie": f"sessionid={cookie}", "Origin": gateway.url})) == 403
    assert asyncio.run(connect({"Origin": gateway.url})) == 403  # anonymous


def test_the_live_page_needs_staff(gateway):
    client = httpx.Client(
        base_url=gateway.url, cookies={"sessionid": _session_cookie("live-dev2", staff=False)}
    )
    assert client.get("/live/").status_code == 403
    client = httpx.Client(
        base_url=gateway.url, cookies={"sessionid": _session_cookie("live-staff2", staff=True)}
    )
    page = client.get("/live/")
    assert page.status_code == 200 and "/ws/live" in client.get("/static/reports/live.js").text


@pytest.fixture(scope="module")
def redis_pair(redis_url):
    env = {"REDIS_URL": redis_url, "CELERY_BROKER_URL": "memory://"}
    a = GatewayProcess({**env, "GATEWAY_DATA_DIR": tempfile.mkdtemp(prefix="junction-live-a-")})
    b = GatewayProcess({**env, "GATEWAY_DATA_DIR": tempfile.mkdtemp(prefix="junction-live-b-")})
    yield a, b
    a.stop()
    b.stop()


def test_a_request_served_by_another_process_shows_up_through_redis(redis_pair, fake_openai):
    a, b = redis_pair
    upstream = world.provider(fake_openai.url + "/v1")
    key = world.alice_key()
    deadline = time.time() + 5  # b notices the new provider through the config version
    while time.time() < deadline and _post(b, key, upstream.name).status_code != 200:
        time.sleep(0.1)
    cookie = _session_cookie("live-staff3", staff=True)
    event = asyncio.run(
        _watch(a, cookie, lambda: _post(b, key, upstream.name), lambda r: r.headers["x-request-id"])
    )
    assert event["provider"] == upstream.name and event["request_id"].startswith("req_")
