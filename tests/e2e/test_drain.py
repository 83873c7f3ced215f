"""Graceful drain on SIGTERM (gateway.daphne_main): streams in flight through the real
server and fake upstreams either complete or end with the client format's error event
at the grace deadline; every request has exactly one UsageRecord; the process exits 0."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx

from gateway.models import UsageRecord

from . import world
from .conftest import GatewayProcess


class StreamClient(threading.Thread):
    """One streaming request on its own connection; records what the client saw."""

    def __init__(self, url: str, key: str, path: str, body: dict) -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.path, self.body = url, key, path, body
        self.first_byte = threading.Event()
        self.text = ""
        self.status = 0
        self.request_id = ""
        self.error: Exception | None = None

    def run(self) -> None:
        headers = {"authorization": f"Bearer {self.key}", "x-api-key": self.key,
                   "anthropic-version": "2023-06-01"}
        try:
            with httpx.stream("POST", self.url + self.path, json=self.body, headers=headers, timeout=60) as r:
                self.status, self.request_id = r.status_code, r.headers.get("x-request-id", "")
                for chunk in r.iter_text():
                    self.text += chunk
                    self.first_byte.set()
        except Exception as exc:  # noqa: BLE001  (the test asserts there was none)
            self.error = exc
        finally:
            self.first_byte.set()


def data_events(text: str) -> list[str]:
    return [e.split("data: ", 1)[1] for e in text.split("\n\n") if "data: " in e]


def test_sigterm_drains_streams_in_flight_and_ends_the_rest_with_error_events(fake_openai):
    upstream = world.provider(fake_openai.url + "/v1")
    key = world.alice_key()
    server = GatewayProcess({"GATEWAY_DRAIN_SECONDS": "2", "LOG_LEVEL": "INFO"})
    chat = [{"role": "user", "content": "x"}]
    short = [StreamClient(server.url, key, "/v1/chat/completions",
                          {"model": f"{upstream.name}/mock:token_delay=0.1,tokens=12", "stream": True,
                           "messages": chat}) for _ in range(3)]
    long = [StreamClient(server.url, key, "/v1/chat/completions",
                         {"model": f"{upstream.name}/mock:token_delay=0.2,tokens=200", "stream": True,
                          "messages": chat}) for _ in range(2)]
    # An Anthropic client on an OpenAI upstream (translated): its error event is Anthropic's.
    translated = StreamClient(server.url, key, "/v1/messages",
                              {"model": f"{upstream.name}/mock:token_delay=0.2,tokens=200", "stream": True,
                               "max_tokens": 100, "messages": chat})
    clients = short + long + [translated]
    try:
        for client in clients:
            client.start()
        for client in clients:
            assert client.first_byte.wait(10)
        signalled = time.perf_counter()
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        try:  # no longer accepting
            httpx.get(server.url + "/health/live", timeout=1)
            refused = False
        except httpx.HTTPError:
            refused = True
        assert server.proc.wait(20) == 0
        stopped = time.perf_counter() - signalled
        for client in clients:
            client.join(10)
    finally:
        server.stop()
    assert refused
    assert 1.8 < stopped < 10, stopped
    for client in short:
        assert client.error is None and client.status == 200
        assert data_events(client.text)[-1] == "[DONE]"
    for client in long:
        assert client.error is None and client.status == 200
        last = data_events(client.text)[-1]
        assert last != "[DONE]" and json.loads(last)["error"]["code"] == "overloaded"
    assert translated.error is None and translated.status == 200
    assert "event: error" in translated.text and "overloaded" in translated.text.rsplit("event: error", 1)[1]
    ids = [c.request_id for c in clients]
    assert all(ids)
    rows = list(UsageRecord.objects.filter(request_id__in=ids))
    assert sorted(r.request_id for r in rows) == sorted(ids)  # exactly one each
    by_id = {r.request_id: r for r in rows}
    assert all(by_id[c.request_id].status == 200 for c in short)
    assert all(by_id[c.request_id].status == 503 and by_id[c.request_id].completion_tokens > 0
               for c in long + [translated])
    logs = server.logs()
    assert "draining: 6 requests in flight" in logs and "gateway stopped" in logs


def test_a_second_sigterm_ends_the_grace_period_at_once(fake_openai):
    upstream = world.provider(fake_openai.url + "/v1")
    key = world.alice_key()
    server = GatewayProcess({"GATEWAY_DRAIN_SECONDS": "60"})
    client = StreamClient(server.url, key, "/v1/chat/completions",
                          {"model": f"{upstream.name}/mock:token_delay=0.2,tokens=200", "stream": True,
                           "messages": [{"role": "user", "content": "x"}]})
    try:
        client.start()
        assert client.first_byte.wait(10)
        started = time.perf_counter()
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(20) == 0
        assert time.perf_counter() - started < 5
        client.join(10)
    finally:
        server.stop()
    assert json.loads(data_events(client.text)[-1])["error"]["code"] == "overloaded"
    assert UsageRecord.objects.filter(request_id=client.request_id).count() == 1
