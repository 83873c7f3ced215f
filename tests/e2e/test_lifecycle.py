"""Process lifecycle: usage buffered in memory is written on shutdown; anonymous mode."""

from __future__ import annotations

import signal

import httpx

from gateway.models import UsageRecord

from . import world
from .conftest import GatewayProcess


def test_usage_still_buffered_is_written_when_the_server_stops(fake_openai):
    upstream = world.provider(fake_openai.url + "/v1")
    key = world.alice_key()
    # A flush window far longer than the test: only the shutdown flush can write these.
    server = GatewayProcess({"GATEWAY_USAGE_FLUSH_SECONDS": "3600"})
    try:
        ids = []
        for stream in (False, True, False):
            r = httpx.post(server.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                           json={"model": upstream.name, "stream": stream,
                                 "messages": [{"role": "user", "content": "x"}]})
            assert r.status_code == 200
            ids.append(r.headers["x-request-id"])
        assert UsageRecord.objects.filter(request_id__in=ids).count() == 0
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(20)
    finally:
        server.stop()
    rows = UsageRecord.objects.filter(request_id__in=ids)
    assert rows.count() == 3 and all(r.completion_tokens > 0 for r in rows)


def test_anonymous_mode_accepts_any_key_and_books_to_the_anonymous_user(fake_openai):
    upstream = world.provider(fake_openai.url + "/v1")
    server = GatewayProcess({"GATEWAY_ALLOW_ANONYMOUS": "true"})
    try:
        r = httpx.post(server.url + "/v1/chat/completions",
                       json={"model": upstream.name, "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 200
        record = world.wait_record(r.headers["x-request-id"])
        assert record.user.username == "anonymous" and record.key is None
    finally:
        server.stop()


def test_metrics_count_requests_tokens_and_spend(gateway, fake_openai):
    upstream = world.provider(fake_openai.url + "/v1")
    world.price(upstream, "mock", input_price=0, output_price=1000)
    key = world.alice_key()
    for stream in (False, True):
        r = httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                       json={"model": upstream.name, "stream": stream, "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 200
    text = httpx.get(gateway.url + "/metrics").text
    labels = f'endpoint="chat.completions",model="mock",provider="{upstream.name}",route="provider:{upstream.name}"'
    assert f'junction_requests_total{{{labels},status="200"}} 2.0' in text
    assert f'junction_tokens_total{{kind="output",model="mock",provider="{upstream.name}",' \
           f'route="provider:{upstream.name}"}} 14.0' in text
    assert f'junction_cost_usd_total{{model="mock",provider="{upstream.name}",route="provider:{upstream.name}"}} ' \
           f'0.014' in text
    assert "junction_request_seconds_bucket" in text and "junction_time_to_first_byte_seconds_bucket" in text


def test_daphne_starts_the_gateway_before_serving_and_stops_it_on_sigterm():
    """Daphne has no ASGI lifespan: gateway.daphne_main drives Gateway.start()/stop()."""
    server = GatewayProcess({"LOG_LEVEL": "INFO"})
    try:
        assert httpx.get(server.url + "/health/live").status_code == 200
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(20) == 0
    finally:
        server.stop()
    logs = server.logs()
    assert logs.index("gateway started") < logs.index("gateway stopped")
