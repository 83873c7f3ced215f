"""Health probes against fake upstreams on real loopback sockets, the Celery task
(directly and through a real worker on the embedded filesystem broker), and the
health results changing routing."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import time

import pytest
from aiohttp import web
from django.conf import settings
from django.db import close_old_connections

from gateway.snapshot import build_snapshot, current_version
from providers.models import Provider
from routing import health
from routing.features import extract_features
from routing.models import ProviderHealth
from routing.planner import plan_request
from routing.selectors import with_routing
from routing.stats import RuntimeStats
from routing.tasks import check_provider_health
from tests.fakes.base import FakeServer

from . import world
from .build import ALICE, Clock
from tests.environment import ROOT


class Misbehaving(FakeServer):
    """/slow/v1/models answers after `delay`; /echo/v1/models refuses the key and repeats it,
    as some providers do in their 401 message."""

    delay = 0.3

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/slow/v1/models", self.slow)
        app.router.add_get("/echo/v1/models", self.echo)

    async def slow(self, request: web.Request) -> web.Response:
        await self.record(request)
        await asyncio.sleep(self.delay)
        return web.json_response({"object": "list", "data": []})

    async def echo(self, request: web.Request) -> web.Response:
        await self.record(request)
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        return web.json_response({"error": {"message": f"Incorrect API key provided: {key}. Get one at "
                                                       f"https://example.invalid/keys?key={key}",
                                            "type": "invalid_request_error"}}, status=401)


@pytest.fixture(scope="module")
def misbehaving():
    server = Misbehaving().start()
    yield server
    server.stop()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def row(p: Provider) -> ProviderHealth:
    return ProviderHealth.objects.get(provider=p)


class TestProbes:
    def test_an_openai_provider_is_probed_with_its_model_list(self, fake_openai):
        p = world.provider(fake_openai.url + "/v1")
        result = health.probe_provider(p)
        assert result.ok and result.status_code == 200 and result.latency_ms > 0
        sent = fake_openai.last()
        assert (sent.method, sent.path) == ("GET", "/v1/models")
        assert sent.headers["authorization"] == "Bearer sk-upstream-secret"

    def test_an_anthropic_provider_is_probed_with_its_headers(self, fake_anthropic):
        p = world.provider(fake_anthropic.url, type="anthropic", model="claude-sonnet-4-5")
        assert health.probe_provider(p).ok
        sent = fake_anthropic.last()
        assert sent.path == "/v1/models" and sent.headers["x-api-key"] == "sk-upstream-secret"
        assert sent.headers["anthropic-version"] == "2023-06-01"

    def test_an_anthropic_provider_without_a_key_is_down_with_the_reason(self, fake_anthropic):
        p = world.provider(fake_anthropic.url, type="anthropic", api_key="")
        result = health.probe_provider(p)
        assert not result.ok and result.status_code == 401
        assert result.error == "HTTP 401 from GET /v1/models: x-api-key header is required"

    def test_an_ollama_provider_is_probed_with_its_tags(self, fake_ollama):
        p = world.provider(fake_ollama.url, type="ollama", api_key="")
        assert health.probe_provider(p).ok
        assert fake_ollama.last().path == "/api/tags"
        assert "authorization" not in fake_ollama.last().headers

    def test_a_closed_port_is_down(self):
        result = health.probe_provider(world.provider(closed_port_url()))
        assert result.ok is False and result.status_code is None
        assert result.error.startswith("ConnectError on GET /v1/models")

    def test_the_completion_probe_asks_for_one_token(self, fake_openai):
        p = world.provider(fake_openai.url + "/v1", model="mock")
        assert health.probe_provider(p, kind="completion").ok
        sent = fake_openai.last()
        assert sent.path == "/v1/chat/completions" and sent.body["max_tokens"] == 1
        assert sent.body["model"] == "mock"

    def test_bedrock_is_not_probed(self):
        p = world.provider("", type="bedrock", region="eu-west-1")
        result = health.probe_provider(p)
        assert result.ok is None and result.error == "bedrock providers are not probed"

    def test_azure_lists_models_on_either_url_scheme(self):
        p = Provider(name="az", type="azure", base_url="https://res.openai.azure.com", api_key="az-key",
                     api_version="2024-06-01")
        method, url, headers, body = health._request(p, "models")
        assert (method, url) == ("GET", "https://res.openai.azure.com/openai/models?api-version=2024-06-01")
        assert headers["api-key"] == "az-key" and body is None
        v1 = Provider(name="az1", type="azure", base_url="https://res.openai.azure.com/openai/v1", api_key="eyJtoken")
        method, url, headers, body = health._request(v1, "models")
        assert url == "https://res.openai.azure.com/openai/v1/models"
        assert headers["authorization"] == "Bearer eyJtoken" and "api-key" not in headers

    def test_an_azure_deployment_is_probed_with_one_token(self, fake_azure):
        from tests.fakes.azure import API_KEY

        p = world.provider(fake_azure.url, type="azure", model="gpt-4o", api_key=API_KEY)
        world.window(p, "gpt-4o", 128000, deployment="mock")  # the fake answers as the deployment's name says
        assert health.probe_provider(p, kind="completion").ok
        sent = fake_azure.last()
        assert sent.path == "/openai/deployments/mock/chat/completions" and sent.query == "api-version=2024-10-21"
        assert sent.body["max_tokens"] == 1
        p.api_version = "v1"
        assert health.probe_provider(p, kind="completion").ok
        assert fake_azure.last().path == "/openai/v1/chat/completions"
        p.api_key = "wrong"
        result = health.probe_provider(p, kind="completion")
        assert result.ok is False and result.status_code == 401 and "wrong" not in result.error

    def test_openrouter_checks_the_key_not_the_public_model_list(self):
        p = Provider(name="or", type="openrouter", base_url="https://openrouter.ai/api/v1", api_key="sk-or-1")
        method, url, headers, _ = health._request(p, "models")
        assert (method, url) == ("GET", "https://openrouter.ai/api/v1/key")
        assert headers["authorization"] == "Bearer sk-or-1"

    def test_errors_never_carry_the_key_or_a_query_string(self, misbehaving):
        p = world.provider(misbehaving.url + "/echo/v1", api_key="sk-very-secret-key-123")
        result = health.probe_provider(p)
        assert result.ok is False and result.status_code == 401
        assert "sk-very-secret-key-123" not in result.error and "very-secret" not in result.error
        assert result.error.startswith("HTTP 401 from GET /echo/v1/models: Incorrect API key provided: ***")


class TestRecording:
    def test_a_slow_probe_is_degraded(self, misbehaving, monkeypatch):
        monkeypatch.setattr(health, "SLOW_SECONDS", 0.1)
        p = world.provider(misbehaving.url + "/slow/v1")
        assert health.check_providers([p.id]) == {p.name: ("unknown", "degraded")}
        assert row(p).latency_ms >= 300

    def test_latency_and_error_rate_are_ewmas_over_probes(self, fake_openai):
        p = world.provider(fake_openai.url + "/v1")
        health.check_providers([p.id])
        h = row(p)
        assert h.status == "up" and h.error_rate == 0 and h.circuit_state == "closed" and h.checked_at
        first_latency = h.latency_ms
        p.base_url = closed_port_url()
        p.save()
        health.check_providers([p.id])
        h = row(p)
        assert h.status == "down" and h.error_rate == 0.2 and h.circuit_state == "open"
        assert h.latency_ms == first_latency  # failed probes do not move the latency
        assert "ConnectError" in h.last_error and "127.0.0.1" not in h.last_error

    def test_a_flapping_provider_is_degraded_while_it_recovers(self, fake_openai):
        p = world.provider(fake_openai.url + "/v1")
        ProviderHealth.objects.create(provider=p, status="down", error_rate=0.5)
        assert health.check_providers([p.id])[p.name] == ("down", "degraded")  # error rate 0.4
        assert row(p).last_error == ""

    def test_a_provider_that_stays_down_is_logged_once_and_its_recovery_once(self, fake_openai, caplog):
        p = world.provider(closed_port_url())
        with caplog.at_level("INFO", logger="junction.health"):
            for _ in range(3):  # the beat checks every 30 s: one line, not one per check
                health.check_providers([p.id])
            p.base_url = fake_openai.url + "/v1"
            p.save()
            health.check_providers([p.id])
            health.check_providers([p.id])
        lines = [r.getMessage() for r in caplog.records if r.name == "junction.health" and p.name in r.getMessage()]
        assert len(lines) == 2, lines
        assert lines[0].startswith(f"provider {p.name} is down (was unknown): ConnectError")
        assert lines[1].startswith(f"provider {p.name} is ")  # degraded while the error rate decays
        assert "(was down)" in lines[1]

    def test_disabled_providers_are_not_probed(self, fake_openai):
        on = world.provider(fake_openai.url + "/v1")
        off = world.provider(fake_openai.url + "/v1", enabled=False)
        assert set(health.check_providers([on.id, off.id])) == {on.name}
        assert not ProviderHealth.objects.filter(provider=off).exists()


class TestTask:
    def test_a_status_change_bumps_the_config_version(self, fake_openai):
        p = world.provider(fake_openai.url + "/v1")
        before = current_version()
        assert check_provider_health([p.id]) == {p.name: "up"}
        assert current_version() != before

    def test_an_unchanged_status_does_not_bump_it(self, fake_openai):
        p = world.provider(fake_openai.url + "/v1")
        check_provider_health([p.id])
        before = current_version()
        check_provider_health([p.id])
        assert current_version() == before

    def test_a_provider_going_down_moves_to_the_end_of_the_chain_and_back(self, fake_openai):
        first = world.provider(fake_openai.url + "/v1", model="a")
        second = world.provider(fake_openai.url + "/v1", model="b")
        r = world.route([(first, "a"), (second, "b")])
        features = extract_features("openai_chat", {"model": r.name, "messages": []}, {})

        def chain():
            snap = with_routing(build_snapshot())
            decision = plan_request(snap, r.name, ALICE, features, RuntimeStats(clock=Clock()),
                                    rng=random.Random(0))
            return [c.provider.name for c in decision.plan.candidates]

        check_provider_health([first.id, second.id])
        assert chain() == [first.name, second.name]
        first.base_url = closed_port_url()
        first.save()
        check_provider_health([first.id])
        assert chain() == [second.name, first.name]
        first.base_url = fake_openai.url + "/v1"
        first.save()
        check_provider_health([first.id])
        assert chain() == [first.name, second.name]

    def test_the_beat_schedule_runs_it_every_thirty_seconds(self):
        entry = settings.CELERY_BEAT_SCHEDULE["provider-health"]
        assert entry == {"task": "routing.tasks.check_provider_health", "schedule": 30.0}


def _filesystem_broker(app, data_dir, monkeypatch) -> None:
    """Point this process's Celery app at the worker's filesystem broker (needed when another
    conftest configured Django first with a different broker). Celery reads the broker URL
    from the CELERY_BROKER_URL environment variable before its settings."""
    monkeypatch.setenv("CELERY_BROKER_URL", "filesystem://")
    folders = {"data_folder_in": str(data_dir / "broker/in"), "data_folder_out": str(data_dir / "broker/in"),
               "processed_folder": str(data_dir / "broker/processed"), "store_processed": False,
               "control_folder": str(data_dir / "broker/control")}  # as gateway/settings.py derives them
    for folder in ("broker/in", "broker/processed", "broker/control"):
        (data_dir / folder).mkdir(parents=True, exist_ok=True)
    if app.conf.broker_transport_options == folders:
        return
    app.conf.broker_transport_options = folders
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None


def test_the_task_runs_in_a_real_worker_on_the_embedded_broker(fake_openai, monkeypatch):
    from gateway.celery import app  # the project's app: shared tasks bind to it

    up = world.provider(fake_openai.url + "/v1")
    down = world.provider(closed_port_url())
    data_dir = settings.DATA_DIR
    _filesystem_broker(app, data_dir, monkeypatch)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gateway.settings", "GATEWAY_DATA_DIR": str(data_dir),
           "DATABASE_URL": f"sqlite:///{settings.DATABASES['default']['NAME']}", "SECRET_KEY": settings.SECRET_KEY,
           "CELERY_BROKER_URL": "filesystem://", "LOG_LEVEL": "WARNING"}
    log_path = data_dir / f"celery-worker-{os.getpid()}.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "gateway", "worker", "--pool=solo", "--loglevel=WARNING",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"routing-test-{os.getpid()}@%h"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        check_provider_health.delay([up.id, down.id])
        deadline = time.monotonic() + 30
        rows = {}
        while time.monotonic() < deadline and len(rows) < 2:
            close_old_connections()
            rows = {h.provider_id: h for h in ProviderHealth.objects.filter(provider_id__in=[up.id, down.id])}
            time.sleep(0.2)
        assert len(rows) == 2, f"no ProviderHealth rows after 30 s; worker log:\n{log_path.read_text()}"
        assert rows[up.id].status == "up" and rows[down.id].status == "down"
        assert fake_openai.last().path == "/v1/models"
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
