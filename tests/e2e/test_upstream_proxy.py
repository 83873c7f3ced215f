"""A provider behind a forward proxy (its `proxy` setting), through the real gateway:
the proxy on loopback (tests/fakes/forward_proxy.py) sees the upstream requests, and
a proxy that is down is an unreachable upstream that falls back."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.forward_proxy import ForwardProxy

from . import world
from .conftest import free_port

CHAT = [{"role": "user", "content": "hello"}]


@pytest.fixture
def alice():
    return world.alice_key()


@pytest.fixture
def forward_proxy():
    proxy = ForwardProxy(credentials=("gw", "pw")).start()
    yield proxy
    proxy.stop()


def post(gateway, key, body):
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json=body,
        timeout=30,
        headers={"authorization": f"Bearer {key}"},
    )


def test_a_provider_with_a_proxy_setting_is_reached_through_it(gateway, alice, fake_openai, forward_proxy):
    upstream = world.provider(fake_openai.url + "/v1", proxy=forward_proxy.url)
    r = post(gateway, alice, {"model": f"{upstream.name}/mock", "messages": CHAT})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        timeout=30,
        headers={"authorization": f"Bearer {alice}"},
        json={"model": f"{upstream.name}/mock:tokens=5", "messages": CHAT, "stream": True},
    ) as s:
        assert s.status_code == 200
        body = b"".join(s.iter_bytes())
    assert body.rstrip().endswith(b"data: [DONE]")
    target = fake_openai.url + "/v1/chat/completions"
    assert forward_proxy.seen == [("POST", target), ("POST", target)]


def test_a_proxy_that_is_down_is_an_unreachable_upstream_and_falls_back(gateway, alice, fake_openai):
    dead = world.provider(fake_openai.url + "/v1", proxy=f"http://127.0.0.1:{free_port()}")
    direct = world.provider(fake_openai.url + "/v1", proxy="direct")
    name = world.unique("proxied")
    world.route(name, [(dead, "mock"), (direct, "mock")])
    r = post(gateway, alice, {"model": name, "messages": CHAT})
    assert r.status_code == 200 and r.headers["x-gateway-attempts"] == "2"
    rec = world.wait_record(r.headers["x-request-id"])
    assert [(a["provider"], a["status"]) for a in rec.attempt_chain] == [(dead.name, 502), (direct.name, 200)]


def test_proxy_and_ca_bundle_round_trip_through_the_config_file():
    from gateway.config_file import export_config, import_config, load
    from providers.models import Provider

    name = world.unique("net")
    import_config(
        load(f"""
providers:
  - name: {name}
    type: anthropic
    proxy: http://proxy.corp.example:3128
    ca_bundle: /etc/ssl/corp-ca.pem
""")
    )
    p = Provider.objects.get(name=name)
    assert (p.proxy, p.ca_bundle) == ("http://proxy.corp.example:3128", "/etc/ssl/corp-ca.pem")
    spec = next(s for s in export_config()["providers"] if s["name"] == name)
    assert (spec["proxy"], spec["ca_bundle"]) == ("http://proxy.corp.example:3128", "/etc/ssl/corp-ca.pem")


class PartingUpstream:
    """An OpenAI-compatible upstream on loopback that writes `408 Request Timeout` on
    every connection shortly after answering (before closing it, as some servers do
    when a keep-alive connection idles)."""

    ANSWER = (
        b'{"id":"chatcmpl-1","object":"chat.completion","created":0,"model":"mock","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}'
    )

    def __init__(self) -> None:
        import asyncio
        import threading

        self.requests = 0
        ready = threading.Event()

        def run():
            self.loop = asyncio.new_event_loop()
            server = self.loop.run_until_complete(asyncio.start_server(self.handle, "127.0.0.1", 0))
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        ready.wait(5)

    async def handle(self, reader, writer):
        import asyncio

        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            self.requests += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (len(self.ANSWER), self.ANSWER)
            )
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.write(b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(5)  # keeps the connection open, so only the 408 tells
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        import asyncio

        def shutdown():
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.call_soon(self.loop.stop)

        self.loop.call_soon_threadsafe(shutdown)


def test_a_pooled_connection_dropped_before_writing_is_counted_on_the_attempt(gateway, alice):
    parting = PartingUpstream()
    try:
        upstream = world.provider(f"http://127.0.0.1:{parting.port}/v1", proxy="direct")
        first = post(gateway, alice, {"model": f"{upstream.name}/mock", "messages": CHAT})
        assert first.status_code == 200
        import time

        time.sleep(0.4)  # the 408 has arrived on the pooled connection
        second = post(gateway, alice, {"model": f"{upstream.name}/mock", "messages": CHAT})
        assert second.status_code == 200 and second.json()["choices"][0]["message"]["content"] == "hi"
        assert parting.requests == 2  # the second request was written once, on a new connection
        assert "resends" not in world.wait_record(first.headers["x-request-id"]).attempt_chain[0]
        attempt = world.wait_record(second.headers["x-request-id"]).attempt_chain[0]
        assert attempt["status"] == 200 and attempt["resends"] == 1
    finally:
        parting.stop()


def test_a_proxy_setting_that_is_not_a_url_is_refused_by_the_config_import():
    from gateway.config_file import ConfigError, import_config, load
    from django.core.exceptions import ValidationError

    with pytest.raises((ConfigError, ValidationError), match="proxy"):
        import_config(
            load(f"""
providers:
  - name: {world.unique("badproxy")}
    type: openai
    proxy: proxy.corp.example:3128
""")
        )


def test_health_probes_and_model_discovery_go_through_the_provider_proxy(fake_openai, forward_proxy):
    """Off the hot path too (httpx): the provider's proxy, and its CA bundle (unreadable:
    a failed probe with the reason, a discovery error, never a crash)."""
    from providers.discovery import DiscoveryError, discover
    from routing.health import probe_provider

    upstream = world.provider(fake_openai.url + "/v1", proxy=forward_proxy.url)
    assert probe_provider(upstream, kind="models").ok
    assert [d.model_id for d in discover(upstream)]
    assert forward_proxy.seen == [("GET", fake_openai.url + "/v1/models")] * 2

    broken = world.provider("https://localhost:9/v1", ca_bundle="/nonexistent/ca.pem")
    result = probe_provider(broken, kind="models")
    assert result.ok is False and "FileNotFoundError" in result.error
    with pytest.raises(DiscoveryError, match="FileNotFoundError"):
        discover(broken)
