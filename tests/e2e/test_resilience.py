"""Routing and resilience through the real gateway: retries and backoff, circuit
breaking, stalls, context-length widening, weighted split, session affinity, rules
on real agent request shapes, and health checks that change routing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from routing.models import Route, RouteRule

from . import world
from .conftest import free_port

CHAT = [{"role": "user", "content": "hello"}]
CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agents"


@pytest.fixture
def alice():
    return world.alice_key()


@pytest.fixture
def upstream(fake_openai):
    return world.provider(fake_openai.url + "/v1")


def post(gateway, key, body, headers=None, timeout=30):
    return httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=timeout,
                      headers={"authorization": f"Bearer {key}", **(headers or {})})


class TestRetries:
    def test_a_429_with_retry_after_is_retried_after_that_wait_when_no_other_target_exists(
            self, gateway, alice, upstream):
        tag = world.unique("t")
        started = time.perf_counter()
        r = post(gateway, alice, {"model": f"{upstream.name}/mock:status=429,retry_after=1,fail_times=1,{tag}",
                                  "messages": CHAT})
        elapsed = time.perf_counter() - started
        assert r.status_code == 200 and r.headers["x-gateway-attempts"] == "2"
        assert 0.9 <= elapsed < 4
        rec = world.wait_record(r.headers["x-request-id"])
        assert [a["status"] for a in rec.attempt_chain] == [429, 200]

    def test_a_429_moves_to_the_next_target_at_once_instead_of_waiting(self, gateway, alice, upstream):
        name = world.unique("r429")
        world.route(name, [(upstream, "mock:status=429,retry_after=20"), (upstream, "mock")])
        started = time.perf_counter()
        r = post(gateway, alice, {"model": name, "messages": CHAT})
        assert r.status_code == 200 and time.perf_counter() - started < 2

    def test_a_500_is_retried_with_a_short_backoff(self, gateway, alice, upstream):
        tag = world.unique("t")
        r = post(gateway, alice, {"model": f"{upstream.name}/mock:status=500,fail_times=1,{tag}", "messages": CHAT})
        assert r.status_code == 200 and r.headers["x-gateway-attempts"] == "2"

    def test_retries_are_bounded_and_the_last_error_comes_back(self, gateway, alice, upstream):
        r = post(gateway, alice, {"model": f"{upstream.name}/mock:status=503", "messages": CHAT})
        assert r.status_code == 503 and r.headers["x-gateway-attempts"] == "2"  # one retry round by default

    def test_a_client_error_is_never_retried(self, gateway, alice, upstream):
        r = post(gateway, alice, {"model": f"{upstream.name}/mock:status=400", "messages": CHAT})
        assert r.status_code == 400 and r.headers["x-gateway-attempts"] == "1"


class TestStalls:
    def test_a_stream_that_stalls_mid_way_ends_with_an_error_event(self, gateway, alice, fake_openai):
        slow = world.provider(fake_openai.url + "/v1", first_token_timeout=0.5)
        started = time.perf_counter()
        r = post(gateway, alice, {"model": f"{slow.name}/mock:stall_after=3", "messages": CHAT, "stream": True})
        assert time.perf_counter() - started < 5
        events = [e[6:] for e in r.text.split("\n\n") if e.startswith("data: ")]
        assert "[DONE]" not in events and "error" in json.loads(events[-1])
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.status == 504 and rec.error_type == "timeout"

    def test_a_stall_before_the_first_token_falls_back(self, gateway, alice, fake_openai, upstream):
        slow = world.provider(fake_openai.url + "/v1", first_token_timeout=0.5)
        name = world.unique("stall")
        world.route(name, [(slow, "mock:stall_after=0"), (upstream, "mock")])
        r = post(gateway, alice, {"model": name, "messages": CHAT, "stream": True})
        assert r.status_code == 200 and r.headers["x-gateway-provider"] == upstream.name


class TestCircuitBreaker:
    def test_a_failing_target_is_tried_last_once_its_circuit_opens(self, gateway, alice, fake_openai, upstream):
        broken = world.provider(fake_openai.url + "/v1")
        name = world.unique("cb")
        world.route(name, [(broken, "mock:status=500"), (upstream, "mock")])
        for _ in range(5):  # five consecutive failures open the circuit
            assert post(gateway, alice, {"model": name, "messages": CHAT}).headers["x-gateway-attempts"] == "2"
        r = post(gateway, alice, {"model": name, "messages": CHAT})
        assert r.status_code == 200 and r.headers["x-gateway-attempts"] == "1"
        assert r.headers["x-gateway-candidates"].startswith(f"{upstream.name}/mock")
        ready = httpx.get(gateway.url + "/health/ready").json()
        assert ready["open_circuits"].get(broken.name) == "open"


class TestContextWindow:
    def test_a_context_length_error_retries_on_a_larger_context_target(self, gateway, alice, fake_openai):
        small = world.provider(fake_openai.url + "/v1", model="mock:context_length")
        big = world.provider(fake_openai.url + "/v1", model="mock")
        world.price(small, "mock:context_length", 1, 1, context_window=8192)
        world.price(big, "mock", 1, 1, context_window=200000)
        name = world.unique("ctx")
        route = world.route(name, [(small, "mock:context_length")])
        world.route(world.unique("ctxbig"), [(big, "mock")])
        # the larger target comes from the global fallback chain
        default = world.route("default", [(small, "mock:context_length"), (big, "mock")])
        try:
            r = post(gateway, alice, {"model": route.name, "messages": CHAT})
            assert r.status_code == 200, r.text
            assert r.headers["x-gateway-provider"] == big.name
        finally:
            default.delete()

    def test_targets_too_small_for_the_prompt_are_skipped(self, gateway, alice, fake_openai):
        small = world.provider(fake_openai.url + "/v1")
        big = world.provider(fake_openai.url + "/v1")
        world.price(small, "mock", 1, 1, context_window=1000)
        world.price(big, "mock", 1, 1, context_window=1_000_000)
        name = world.unique("fit")
        world.route(name, [(small, "mock"), (big, "mock")])
        long = [{"role": "user", "content": "word " * 20_000}]
        r = post(gateway, alice, {"model": name, "messages": long})
        assert r.status_code == 200 and r.headers["x-gateway-provider"] == big.name


class TestStrategies:
    def test_a_weighted_split_holds_within_tolerance(self, gateway, alice, fake_openai):
        heavy = world.provider(fake_openai.url + "/v1")
        light = world.provider(fake_openai.url + "/v1")
        name = world.unique("w")
        route = Route.objects.create(name=name, strategy="weighted")
        route.targets.create(provider=heavy, model="mock:tokens=1", weight=3, order=0)
        route.targets.create(provider=light, model="mock:tokens=1", weight=1, order=1)
        route.save()
        counts = {heavy.name: 0, light.name: 0}
        with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {alice}"}) as client:
            for _ in range(300):
                r = client.post("/v1/chat/completions", json={"model": name, "messages": CHAT})
                counts[r.headers["x-gateway-provider"]] += 1
        assert 0.65 <= counts[heavy.name] / 300 <= 0.85

    def test_a_session_sticks_to_one_target(self, gateway, alice, fake_openai):
        a = world.provider(fake_openai.url + "/v1")
        b = world.provider(fake_openai.url + "/v1")
        name = world.unique("sticky")
        route = Route.objects.create(name=name, strategy="weighted")
        route.targets.create(provider=a, model="mock", weight=1, order=0)
        route.targets.create(provider=b, model="mock", weight=1, order=1)
        route.save()
        for session in ("s-one", "s-two", "s-three"):
            seen = {post(gateway, alice, {"model": name, "messages": CHAT},
                         {"agent-session-id": f"{name}-{session}"}).headers["x-gateway-provider"] for _ in range(8)}
            assert len(seen) == 1

    def test_affinity_never_blocks_failover(self, gateway, alice, fake_openai, upstream):
        flaky = world.provider(fake_openai.url + "/v1")
        name = world.unique("aff")
        world.route(name, [(flaky, "mock"), (upstream, "mock")])
        headers = {"x-session-id": name}
        assert post(gateway, alice, {"model": name, "messages": CHAT}, headers).headers["x-gateway-provider"] == \
            flaky.name
        flaky.enabled = False
        flaky.save()
        r = post(gateway, alice, {"model": name, "messages": CHAT}, headers)
        assert r.status_code == 200 and r.headers["x-gateway-provider"] == upstream.name


class TestRules:
    def test_side_calls_go_to_the_cheap_target_and_main_calls_to_the_strong_one(self, gateway, alice,
                                                                                fake_openai, fake_anthropic):
        strong = world.provider(fake_anthropic.url, type="anthropic")
        cheap = world.provider(fake_openai.url + "/v1")
        name = world.unique("agent")
        route = world.route(name, [(strong, "mock")])
        RouteRule.objects.create(route=route, order=0, name="titles to cheap", conditions={"side_call": True},
                                 target_provider=cheap, target_model="mock")
        route.save()
        headers = {"x-api-key": alice, "anthropic-version": "2023-06-01"}
        cc = CAPTURES / "claude-code/02-apikey-sonnet45-nonessential-on"
        bodies = {json.loads(p.read_text())["body"].get("tools") == []: json.loads(p.read_text())
                  for p in sorted(cc.glob("0*-v1_messages.json"))}
        title, main = bodies[True], bodies[False]
        r = httpx.post(gateway.url + "/v1/messages", headers=headers, timeout=30,
                       content=json.dumps(dict(title["body"], model=name)))
        assert r.status_code == 200, r.text
        assert r.headers["x-gateway-provider"] == cheap.name and r.headers["x-gateway-rule"] == "titles to cheap"
        r = httpx.post(gateway.url + "/v1/messages", headers={**headers, "anthropic-beta": main["headers"].get(
            "anthropic-beta", "")}, timeout=30, content=json.dumps(dict(main["body"], model=name)))
        assert r.status_code == 200, r.text
        assert r.headers["x-gateway-provider"] == strong.name and r.headers["x-gateway-rule"] == ""
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.route == name and rec.candidates == [f"{strong.name}/mock"]

    def test_rules_on_tool_count_send_goose_requests_with_tools_to_the_strong_target(self, gateway, alice,
                                                                                    fake_openai):
        strong = world.provider(fake_openai.url + "/v1")
        local = world.provider(fake_openai.url + "/v1")
        name = world.unique("goose")
        route = world.route(name, [(local, "mock")])
        RouteRule.objects.create(route=route, order=0, name="tools need the strong model",
                                 conditions={"min_tools": 1}, target_provider=strong, target_model="mock")
        route.save()
        body = json.loads((CAPTURES / "goose/openai-chat.json").read_text())
        r = post(gateway, alice, dict(body, model=name, stream=False), {"agent-session-id": world.unique("g")})
        assert r.headers["x-gateway-provider"] == strong.name
        r = post(gateway, alice, {"model": name, "messages": CHAT})
        assert r.headers["x-gateway-provider"] == local.name


class TestHealthChecks:
    def test_a_provider_found_down_by_the_health_task_is_tried_last(self, gateway, alice, fake_openai, upstream):
        from routing.tasks import check_provider_health

        dead = world.provider(f"http://127.0.0.1:{free_port()}/v1")
        name = world.unique("health")
        world.route(name, [(dead, "mock"), (upstream, "mock")])
        check_provider_health()
        r = post(gateway, alice, {"model": name, "messages": CHAT})
        assert r.status_code == 200 and r.headers["x-gateway-attempts"] == "1"
        assert r.headers["x-gateway-candidates"].split(",")[-1] == f"{dead.name}/mock"
        ready = httpx.get(gateway.url + "/health/ready").json()
        assert ready["status"] == "degraded" and ready["degraded_providers"][dead.name] == "down"
        dead.enabled = False  # leave the shared world healthy for other tests
        dead.save()
