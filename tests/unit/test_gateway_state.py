"""The Gateway object (gateway/state.py) without a server: what start() and stop()
do and in which order, that each test's gateway is its own, the event publisher,
and the ASGI application's lifespan protocol (asgiref's ApplicationCommunicator)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from django.test import override_settings

from gateway.asgi import build_application
from gateway.proxy.context import RequestContext
from gateway.state import EventPublisher, Gateway
from gateway.usage import UsageRecorder
from providers.upstream_client import Client


class MemoryRecorder(UsageRecorder):
    """Writes batches to a list instead of the database."""

    def __init__(self) -> None:
        super().__init__(interval=3600)  # only stop() flushes
        self.written: list[dict] = []

    def _write(self, batch: list[dict]) -> None:
        self.written.extend(batch)


def fields(request_id: str) -> dict:
    """A finished request's usage fields, as serve() records them."""
    return {**RequestContext("chat.completions").to_record(), "request_id": request_id}


@pytest.fixture
def gw():
    """One gateway per test, stopped afterwards whatever the test did."""
    gateway = Gateway(recorder=MemoryRecorder())
    yield gateway
    asyncio.run(gateway.stop())


def test_nothing_runs_until_start(gw):
    assert not gw.running and gw.upstream is None
    assert gw.recorder._thread is None and gw.limits._refresher is None and gw.cluster._task is None


def test_start_starts_everything_and_stop_writes_the_buffered_usage(gw):
    async def scenario():
        await gw.start()
        assert gw.running and isinstance(gw.upstream, Client)
        assert gw.recorder._thread.is_alive() and not gw.limits._refresher.done()
        assert gw.cluster._task is None  # no REDIS_URL: no cluster link
        gw.recorder.record(fields("r1"))
        gw.recorder.record(fields("r2"))
        assert gw.recorder.written == []  # the flush window is an hour
        writer = gw.recorder._thread
        await gw.stop()
        assert not gw.running and not writer.is_alive() and gw.limits._refresher is None
        assert [r["request_id"] for r in gw.recorder.written] == ["r1", "r2"]

    asyncio.run(scenario())


def test_start_and_stop_follow_the_dependency_order(gw, monkeypatch):
    order = []
    monkeypatch.setattr(gw.recorder, "start", lambda: order.append("recorder.start"))
    monkeypatch.setattr(gw.recorder, "close", lambda: order.append("recorder.close"))
    monkeypatch.setattr(gw.limits, "start", lambda: order.append("limits.start"))
    monkeypatch.setattr(gw.cluster, "start", lambda: order.append("cluster.start"))

    async def stopped(name):
        order.append(name)

    monkeypatch.setattr(gw.limits, "stop", lambda: stopped("limits.stop"))
    monkeypatch.setattr(gw.cluster, "stop", lambda: stopped("cluster.stop"))

    async def scenario():
        await gw.start()
        await gw.start()  # idempotent
        await gw.stop()
        await gw.stop()

    asyncio.run(scenario())
    assert order == ["recorder.start", "limits.start", "cluster.start",
                     "cluster.stop", "limits.stop", "recorder.close"]


def test_each_gateway_has_its_own_state():
    first, second = Gateway(recorder=MemoryRecorder()), Gateway(recorder=MemoryRecorder())
    token = first.stats.begin(("p", "m"))
    first.stats.end(token, False, status=500)
    assert first.stats.get(("p", "m")) is not None and second.stats.get(("p", "m")) is None
    assert first.limits is not second.limits and first.snapshots is not second.snapshots
    assert first.cluster.stats is first.stats and second.cluster.stats is second.stats
    assert first.limits._recorder is first.recorder and first.snapshots._recorder is first.recorder


def test_the_recorder_feeds_metrics_and_the_event_publisher(gw):
    seen = []
    unsubscribe = gw.events.subscribe(seen.append)
    assert gw.observe in gw.recorder.listeners and gw.events.publish in gw.recorder.listeners
    gw.recorder.record(fields("e1"))
    unsubscribe()
    gw.recorder.record(fields("e2"))
    assert [r["request_id"] for r in seen] == ["e1"]


def test_a_failing_listener_is_dropped_and_the_others_still_called():
    events, seen = EventPublisher(), []

    def broken(fields):
        raise RuntimeError("boom")

    events.subscribe(broken)
    events.subscribe(seen.append)
    events.publish({"n": 1})
    events.publish({"n": 2})
    assert seen == [{"n": 1}, {"n": 2}] and events.listeners == [seen.append]


def test_with_redis_the_cluster_link_starts_and_stops_with_the_gateway(gw):
    async def scenario():
        # Nothing listens on port 1: the sync loop logs its failures and keeps going.
        with override_settings(REDIS_URL="redis://127.0.0.1:1/0", GATEWAY_CLUSTER_SYNC_SECONDS=0.05):
            await gw.start()
            task = gw.cluster._task
            assert task is not None and gw.stats.listener == gw.cluster.circuit_changed
            await asyncio.sleep(0.1)
            assert not task.done()
            await gw.stop()
        assert task.cancelled() and gw.cluster._task is None and gw.stats.listener is None

    asyncio.run(scenario())


def test_budget_refresh_waits_for_budgets_before_reading_the_database(gw, monkeypatch):
    reads = []
    monkeypatch.setattr("gateway.limits._database_spend", lambda cutoff: reads.append(1) or (cutoff, {}))

    async def scenario():
        with override_settings(GATEWAY_BUDGET_REFRESH_SECONDS=0.01):
            await gw.start()
            await asyncio.sleep(0.1)
            assert reads == []  # no budget seen yet
            gw.limits._seeds[1] = (0.0, 0.0)
            await asyncio.sleep(0.1)
            await gw.stop()
        assert reads

    asyncio.run(scenario())


# ---------------------------------------------------------------------------------- ASGI lifespan

async def _lifespan(app, gw):
    comm = ApplicationCommunicator(app, {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}})
    await comm.send_input({"type": "lifespan.startup"})
    assert await comm.receive_output(5) == {"type": "lifespan.startup.complete"}
    assert gw.running
    return comm


async def _get(app, path):
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "path": path,
             "raw_path": path.encode(), "query_string": b"", "headers": [], "scheme": "http",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}
    comm = ApplicationCommunicator(app, scope)
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await comm.receive_output(5)
    body = await comm.receive_output(5)
    await comm.wait(5)
    return start["status"], body["body"]


def test_the_asgi_app_runs_the_gateway_through_the_lifespan_protocol(gw):
    app = build_application(gw)

    async def scenario():
        status, body = await _get(app, "/health/live")
        assert status == 503 and b"not started" in body  # before startup: said plainly
        comm = await _lifespan(app, gw)
        assert (await _get(app, "/health/live"))[0] == 200
        gw.recorder.record(fields("l1"))
        await comm.send_input({"type": "lifespan.shutdown"})
        assert await comm.receive_output(5) == {"type": "lifespan.shutdown.complete"}
        await comm.wait(5)
        assert not gw.running and [r["request_id"] for r in gw.recorder.written] == ["l1"]

    asyncio.run(scenario())


def test_a_failed_startup_is_reported_to_the_server(gw, monkeypatch):
    async def broken():
        raise RuntimeError("no database")

    monkeypatch.setattr(gw, "start", broken)
    app = build_application(gw)

    async def scenario():
        comm = ApplicationCommunicator(app, {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}})
        await comm.send_input({"type": "lifespan.startup"})
        message = await comm.receive_output(5)
        assert message["type"] == "lifespan.startup.failed" and "no database" in message["message"]
        with pytest.raises(RuntimeError):
            await comm.wait(5)

    asyncio.run(scenario())


def test_no_writer_thread_leaks_between_tests():
    assert not [t for t in threading.enumerate() if t.name == "usage-writer" and t.is_alive()]
