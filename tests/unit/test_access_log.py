"""The access log (gateway.access_log): one line per finished request from the gateway's
event publisher, JSON or text, with the key's display prefix and user, never the key."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

from gateway.access_log import AccessLog, install
from gateway.proxy.context import RequestContext
from gateway.state import EventPublisher
from routing.table import ConfigSnapshot, KeyInfo

SECRET = "jk-live-0123456789abcdef0123456789abcdef"


def snapshot() -> ConfigSnapshot:
    key = KeyInfo(id=7, user_id=3, username="alice", prefix=SECRET[:10])
    return ConfigSnapshot(version=1, providers={}, routes={}, keys={"hash-of-the-key": key})


def record(**extra) -> dict:
    ctx = RequestContext("chat.completions")
    ctx.route, ctx.provider, ctx.model, ctx.status = "fast", "openai", "gpt-5", 200
    return {**ctx.to_record(), "key_id": 7, "user_id": 3, "prompt_tokens": 12, "completion_tokens": 5,
            **extra}


def test_json_lines_carry_the_request_fields_and_the_key_prefix_only(caplog):
    snapshots = SimpleNamespace(current=snapshot())
    gw = SimpleNamespace(events=EventPublisher(), snapshots=snapshots)
    unsubscribe = install(gw, "json")
    logger = logging.getLogger("junction.access")
    logger.addHandler(caplog.handler)
    try:
        fields = record()
        gw.events.publish(fields)
    finally:
        logger.removeHandler(caplog.handler)
        unsubscribe()
    [line] = [r.getMessage() for r in caplog.records if r.name == "junction.access"]
    entry = json.loads(line)
    assert entry["request_id"] == fields["request_id"] and entry["key_prefix"] == SECRET[:10]
    assert (entry["user"], entry["route"], entry["provider"], entry["model"], entry["status"]) == \
        ("alice", "fast", "openai", "gpt-5", 200)
    assert entry["prompt_tokens"] == 12 and entry["completion_tokens"] == 5 and entry["latency_ms"] >= 0
    assert "cost_usd" in entry and SECRET not in line
    assert not gw.events.listeners  # unsubscribed


def test_text_format_and_unknown_keys():
    log = AccessLog(SimpleNamespace(current=snapshot()), "text")
    entry = log.entry(record(key_id=None, user_id=None, status=401))
    assert entry["key_prefix"] == "" and entry["user"] == "" and entry["status"] == 401


def test_none_installs_nothing():
    gw = SimpleNamespace(events=EventPublisher(), snapshots=SimpleNamespace(current=snapshot()))
    assert install(gw, "none") is None and not gw.events.listeners


def test_the_console_writes_one_line_per_request_with_route_provider_and_no_key(caplog):
    import asyncio

    from gateway.access_log import ConsoleLog

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"x-gateway-route", b"fast"),
            (b"x-gateway-provider", b"openai"), (b"x-gateway-model", b"gpt-5")]})
        await send({"type": "http.response.body", "body": b"{}"})

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": f"/k/{SECRET}/v1/chat/completions",
             "query_string": b"key=" + SECRET.encode()}
    logger = logging.getLogger("junction.access")
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    try:
        asyncio.run(ConsoleLog()(app, scope, None, send))
    finally:
        logger.removeHandler(caplog.handler)
    [line] = [r.getMessage() for r in caplog.records if r.name == "junction.access"]
    assert len(sent) == 2 and SECRET not in line
    assert f" POST /k/{SECRET[:10]}…/v1/chat/completions 200 " in line
    assert line.endswith(" ms route=fast provider=openai model=gpt-5")


def test_the_console_line_of_a_request_that_never_answered_says_499():
    from gateway.access_log import ConsoleLog

    line = ConsoleLog.line({"method": "GET", "path": "/admin/"}, {"status": 0}, 12.4)
    assert line.endswith(" GET /admin/ 499 12 ms")


def test_text_installs_the_console_not_an_event_listener():
    gw = SimpleNamespace(events=EventPublisher(), snapshots=SimpleNamespace(current=snapshot()), console=None)
    uninstall = install(gw, "text")
    assert gw.console is not None and not gw.events.listeners
    uninstall()
    assert gw.console is None


def test_the_console_leaves_out_static_files_unless_they_fail(caplog):
    import asyncio

    from gateway.access_log import ConsoleLog

    def app(status):
        async def serve(scope, receive, send):
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        return serve

    async def send(message):
        pass

    logger = logging.getLogger("junction.access")
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    try:
        for path, status in (("/static/admin/base.css", 200), ("/static/missing.css", 404), ("/admin/", 200)):
            scope = {"type": "http", "method": "GET", "path": path}
            asyncio.run(ConsoleLog()(app(status), scope, None, send))
    finally:
        logger.removeHandler(caplog.handler)
    lines = [r.getMessage().split(" ", 1)[1] for r in caplog.records if r.name == "junction.access"]
    assert [line.rsplit(" ", 2)[0] for line in lines] == ["GET /static/missing.css 404", "GET /admin/ 200"]
