"""OpenAI-compatible front door → OpenAI-compatible upstream, over real sockets."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from gateway.models import UsageRecord
from gateway.services import key_revoke

from . import world

CHAT = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def alice():
    return world.alice_key()


@pytest.fixture
def upstream(fake_openai):
    return world.provider(fake_openai.url + "/v1")


def post(gateway, key, body, **kw):
    headers = {"authorization": f"Bearer {key}", **kw.pop("headers", {})}
    return httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=headers, timeout=30, **kw)


def sse_events(text: str) -> list[str]:
    return [e[len("data: "):] for e in text.split("\n\n") if e.startswith("data: ")]


class TestPassThrough:
    def test_it_returns_the_upstream_answer_and_records_usage(self, gateway, alice, upstream, fake_openai):
        world.price(upstream, "mock", input_price=2.5, output_price=10)
        r = post(gateway, alice, {"model": f"{upstream.name}/mock", "messages": CHAT})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["choices"][0]["message"]["content"] == "Hello world this is a mock completion"
        assert body["choices"][0]["finish_reason"] == "stop"
        assert r.headers["x-gateway-provider"] == upstream.name
        assert r.headers["x-gateway-model"] == "mock"
        assert r.headers["x-gateway-attempts"] == "1"
        sent = fake_openai.last()
        assert sent.headers["authorization"] == "Bearer sk-upstream-secret"
        assert sent.body["model"] == "mock" and sent.body["messages"] == CHAT
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.status == 200 and rec.provider == upstream.name and rec.user.username == "alice"
        assert rec.prompt_tokens == body["usage"]["prompt_tokens"]
        assert rec.completion_tokens == body["usage"]["completion_tokens"] == 7
        expected = (rec.prompt_tokens * 2.5 + 7 * 10) / 1e6
        assert float(rec.cost_usd) == pytest.approx(expected)

    def test_it_keeps_unknown_fields_on_the_way_up(self, gateway, alice, upstream, fake_openai):
        post(gateway, alice, {"model": upstream.name, "messages": CHAT, "seed": 7, "x_vendor": {"a": 1}})
        assert fake_openai.last().body["seed"] == 7 and fake_openai.last().body["x_vendor"] == {"a": 1}

    def test_a_stream_keeps_its_shape_and_drops_the_usage_chunk_nobody_asked_for(self, gateway, alice,
                                                                                  upstream, fake_openai):
        r = post(gateway, alice, {"model": upstream.name, "messages": CHAT, "stream": True})
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.text)
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert all(c["choices"] for c in chunks), "usage chunk leaked to a client that did not ask"
        assert all("usage" not in c for c in chunks)
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == \
            "Hello world this is a mock completion"
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        # the gateway asked upstream for usage anyway, and recorded it
        assert fake_openai.last().body["stream_options"] == {"include_usage": True}
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.stream and rec.completion_tokens == 7 and rec.prompt_tokens > 0 and not rec.usage_estimated
        assert rec.ttft_ms is not None and rec.ttft_ms <= rec.latency_ms

    def test_a_stream_returns_the_usage_chunk_when_asked(self, gateway, alice, upstream):
        r = post(gateway, alice, {"model": upstream.name, "messages": CHAT, "stream": True,
                                  "stream_options": {"include_usage": True}})
        events = sse_events(r.text)
        usage_chunk = json.loads(events[-2])
        assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 7
        assert usage_chunk["model"]
        finish = [json.loads(e) for e in events[:-2]]
        assert finish[-1]["choices"][0]["finish_reason"] == "stop"

    def test_the_openai_sdk_streams_tool_calls_through(self, gateway, alice, upstream):
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=alice)
        tools = [{"type": "function", "function": {"name": "tree", "parameters": {"type": "object"}}},
                 {"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}]
        stream = client.chat.completions.create(model=f"{upstream.name}/mock:parallel_tools", messages=CHAT,
                                                tools=tools, stream=True, stream_options={"include_usage": True})
        calls: dict[int, dict] = {}
        finish = usage = None
        for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for tc in choice.delta.tool_calls or []:
                    if tc.index not in calls:
                        assert tc.id and tc.function.name, "first fragment must carry id and name"
                        calls[tc.index] = {"id": tc.id, "name": tc.function.name, "args": ""}
                    calls[tc.index]["args"] += tc.function.arguments or ""
        assert finish == "tool_calls"
        assert [c["name"] for c in calls.values()] == ["tree", "read"]
        assert json.loads(calls[0]["args"]) == {"path": "src", "depth": 2}
        assert usage.completion_tokens > 0

    def test_the_openai_sdk_gets_non_streamed_tool_calls(self, gateway, alice, upstream):
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=alice)
        tools = [{"type": "function", "function": {"name": "tree", "parameters": {"type": "object"}}}]
        out = client.chat.completions.create(model=f"{upstream.name}/mock:tools", messages=CHAT, tools=tools)
        call = out.choices[0].message.tool_calls[0]
        assert call.function.name == "tree" and json.loads(call.function.arguments)["path"] == "src"
        assert out.choices[0].finish_reason == "tool_calls" and out.usage.total_tokens > 0

    def test_a_body_of_several_hundred_kilobytes_goes_through(self, gateway, alice, upstream, fake_openai):
        messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": "x" * 1000 + str(i)}
                    for i in range(600)]
        r = post(gateway, alice, {"model": upstream.name, "messages": messages, "stream": True})
        assert r.status_code == 200 and sse_events(r.text)[-1] == "[DONE]"
        assert len(fake_openai.last().raw) > 600_000

    def test_models_lists_routes_and_provider_models(self, gateway, alice, upstream):
        world.route(world.unique("smart"), [(upstream, "mock")])
        world.price(upstream, "mock-large", 1, 2)
        r = httpx.get(gateway.url + "/v1/models", headers={"authorization": f"Bearer {alice}"})
        ids = [m["id"] for m in r.json()["data"]]
        assert f"{upstream.name}/mock-large" in ids
        assert any(i.startswith("smart-") for i in ids)


class TestModelResolution:
    def test_a_route_name_a_provider_name_and_a_pair_all_resolve(self, gateway, alice, upstream, fake_openai):
        name = world.unique("coder")
        world.route(name, [(upstream, "mock:tokens=2")])
        assert post(gateway, alice, {"model": name, "messages": CHAT}).headers["x-gateway-route"] == name
        assert fake_openai.last().body["model"] == "mock:tokens=2"
        post(gateway, alice, {"model": upstream.name, "messages": CHAT})
        assert fake_openai.last().body["model"] == "mock"
        post(gateway, alice, {"model": f"{upstream.name}/mock:tokens=3", "messages": CHAT})
        assert fake_openai.last().body["model"] == "mock:tokens=3"

    def test_a_model_one_provider_serves_resolves_to_it(self, gateway, alice, upstream, fake_openai):
        model_id = world.unique("mock:tokens=1,m")
        world.price(upstream, model_id, 1, 1)
        r = post(gateway, alice, {"model": model_id, "messages": CHAT})
        assert r.status_code == 200 and r.headers["x-gateway-provider"] == upstream.name

    def test_an_unknown_model_is_a_404_in_openai_format(self, gateway, alice, upstream):
        r = post(gateway, alice, {"model": "no-such-model", "messages": CHAT})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "model_not_found"
        assert world.wait_record(r.headers["x-request-id"]).status == 404

    def test_the_default_route_catches_any_model_name(self, gateway, alice, upstream, fake_openai):
        default = world.route("default", [(upstream, "mock:tokens=4")])
        try:
            r = post(gateway, alice, {"model": "an-agent-model-nobody-serves", "messages": CHAT})
            assert r.status_code == 200 and fake_openai.last().body["model"] == "mock:tokens=4"
        finally:
            default.delete()

    def test_a_key_limited_to_routes_cannot_use_others(self, gateway, upstream):
        allowed = world.route(world.unique("allowed"), [(upstream, "mock")])
        key = world.alice_key(routes=[allowed.name])
        assert post(gateway, key, {"model": allowed.name, "messages": CHAT}).status_code == 200
        r = post(gateway, key, {"model": upstream.name, "messages": CHAT})
        assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"


class TestAuth:
    @pytest.mark.parametrize("header", ["authorization", "x-api-key", "api-key"])
    def test_each_key_header_is_accepted(self, gateway, alice, upstream, header):
        value = f"Bearer {alice}" if header == "authorization" else alice
        r = httpx.post(gateway.url + "/v1/chat/completions", headers={header: value},
                       json={"model": upstream.name, "messages": CHAT})
        assert r.status_code == 200

    def test_a_missing_or_unknown_key_is_a_401(self, gateway, upstream):
        r = httpx.post(gateway.url + "/v1/chat/completions", json={"model": upstream.name, "messages": CHAT})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        r = post(gateway, "jk-not-a-real-key", {"model": upstream.name, "messages": CHAT})
        assert r.status_code == 401
        assert world.wait_record(r.headers["x-request-id"]).status == 401

    def test_revocation_takes_effect_on_the_next_request(self, gateway, alice, upstream):
        assert post(gateway, alice, {"model": upstream.name, "messages": CHAT}).status_code == 200
        assert key_revoke(key=alice) == 1
        r = post(gateway, alice, {"model": upstream.name, "messages": CHAT})
        assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]

    def test_an_expired_key_is_refused(self, gateway, upstream):
        from django.utils import timezone

        key = world.alice_key(expires_at=timezone.now())
        assert post(gateway, key, {"model": upstream.name, "messages": CHAT}).status_code == 401

    def test_the_key_can_ride_in_the_path(self, gateway, alice, upstream):
        r = httpx.post(f"{gateway.url}/k/{alice}/v1/chat/completions", json={"model": upstream.name,
                                                                             "messages": CHAT})
        assert r.status_code == 200


class TestBadInput:
    def bad(self, gateway, alice, content, status, fragment, **kw):
        r = httpx.post(gateway.url + "/v1/chat/completions", content=content,
                       headers={"authorization": f"Bearer {alice}", "content-type": "application/json"}, **kw)
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert fragment in error["message"] and error["type"]
        assert world.wait_record(r.headers["x-request-id"]).status == status
        return r

    def test_malformed_json_is_a_400(self, gateway, alice):
        self.bad(gateway, alice, b'{"model": "x", "messages": [', 400, "not valid JSON")

    def test_a_body_that_is_not_an_object_is_a_400(self, gateway, alice):
        self.bad(gateway, alice, b'["model"]', 400, "JSON object")

    def test_a_missing_model_is_a_400(self, gateway, alice):
        self.bad(gateway, alice, json.dumps({"messages": CHAT}).encode(), 400, "`model`")

    def test_ill_typed_messages_are_a_400(self, gateway, alice):
        self.bad(gateway, alice, json.dumps({"model": "x", "messages": "hi"}).encode(), 400, "`messages`")
        self.bad(gateway, alice, json.dumps({"model": "x", "messages": ["hi"]}).encode(), 400, "messages[0]")
        self.bad(gateway, alice, json.dumps({"model": 3, "messages": CHAT}).encode(), 400, "`model`")
        self.bad(gateway, alice, json.dumps({"model": "x", "messages": CHAT, "stream": "yes"}).encode(), 400,
                 "`stream`")

    def test_an_oversized_body_is_a_413(self, gateway, alice):
        from .conftest import MAX_BODY

        big = json.dumps({"model": "x", "messages": [{"role": "user", "content": "x" * (MAX_BODY + 10)}]})
        self.bad(gateway, alice, big.encode(), 413, "exceeds")

    def test_upstream_garbage_is_a_502(self, gateway, alice, upstream):
        r = post(gateway, alice, {"model": f"{upstream.name}/mock:garbage", "messages": CHAT})
        assert r.status_code == 502 and "not JSON" in r.json()["error"]["message"]
        assert world.wait_record(r.headers["x-request-id"]).status == 502

    def test_an_html_error_page_from_upstream_is_a_clear_error(self, gateway, alice, upstream):
        r = post(gateway, alice, {"model": f"{upstream.name}/mock:html_error", "messages": CHAT})
        assert r.status_code == 502 and "502" in r.json()["error"]["message"]

    def test_an_unreachable_upstream_is_a_502(self, gateway, alice):
        from .conftest import free_port

        dead = world.provider(f"http://127.0.0.1:{free_port()}/v1")
        r = post(gateway, alice, {"model": dead.name, "messages": CHAT})
        assert r.status_code == 502 and "unreachable" in r.json()["error"]["message"]
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.status == 502 and rec.attempt_chain[0]["error"] == "bad_gateway"

    def test_an_upstream_that_never_answers_is_a_504(self, gateway, alice, fake_openai):
        slow = world.provider(fake_openai.url + "/v1", first_token_timeout=0.5)
        r = post(gateway, alice, {"model": f"{slow.name}/mock:hang", "messages": CHAT})
        assert r.status_code == 504 and r.json()["error"]["type"] == "timeout_error"

    def test_an_upstream_client_error_keeps_its_status_and_message(self, gateway, alice, upstream):
        r = post(gateway, alice, {"model": f"{upstream.name}/mock:context_length", "messages": CHAT})
        assert r.status_code == 400 and "maximum context length" in r.json()["error"]["message"]


class TestFallback:
    @pytest.mark.parametrize("failure", ["status=500", "status=429,retry_after=1", "status=503", "garbage",
                                         "drop_after=0"])
    def test_it_falls_back_before_the_first_byte(self, gateway, alice, upstream, fake_openai, failure):
        name = world.unique("fb")
        world.route(name, [(upstream, f"mock:{failure}"), (upstream, "mock:tokens=3")])
        for stream in (False, True):
            r = post(gateway, alice, {"model": name, "messages": CHAT, "stream": stream})
            assert r.status_code == 200, r.text
            assert r.headers["x-gateway-attempts"] == "2"
            rec = world.wait_record(r.headers["x-request-id"])
            assert [a["model"] for a in rec.attempt_chain] == [f"mock:{failure}", "mock:tokens=3"]
            assert rec.attempt_chain[1]["status"] == 200 and rec.status == 200

    def test_it_falls_back_when_a_provider_is_unreachable_or_slow(self, gateway, alice, fake_openai, upstream):
        from .conftest import free_port

        dead = world.provider(f"http://127.0.0.1:{free_port()}/v1")
        slow = world.provider(fake_openai.url + "/v1", first_token_timeout=0.3)
        name = world.unique("fb")
        world.route(name, [(dead, "mock"), (slow, "mock:first_delay=5"), (upstream, "mock")])
        r = post(gateway, alice, {"model": name, "messages": CHAT, "stream": True})
        assert r.status_code == 200 and r.headers["x-gateway-provider"] == upstream.name
        rec = world.wait_record(r.headers["x-request-id"])
        assert [a.get("error") for a in rec.attempt_chain] == ["bad_gateway", "timeout", None]

    def test_a_client_error_does_not_fall_back(self, gateway, alice, upstream, fake_openai):
        name = world.unique("fb")
        world.route(name, [(upstream, "mock:status=400"), (upstream, "mock")])
        r = post(gateway, alice, {"model": name, "messages": CHAT})
        assert r.status_code == 400 and r.headers["x-gateway-attempts"] == "1"

    def test_after_the_first_byte_a_failure_ends_the_stream_with_an_error_event(self, gateway, alice,
                                                                                 upstream, fake_openai):
        name = world.unique("fb")
        world.route(name, [(upstream, "mock:drop_after=3"), (upstream, "mock")])
        r = post(gateway, alice, {"model": name, "messages": CHAT, "stream": True})
        assert r.status_code == 200
        events = sse_events(r.text)
        assert "[DONE]" not in events
        assert "error" in json.loads(events[-1])
        assert len(fake_openai.requests) == 1, "must not fall back after the first byte"
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.status == 502 and rec.attempts == 1 and rec.error_type == "bad_gateway"

    def test_the_openai_sdk_raises_on_the_mid_stream_error(self, gateway, alice, upstream):
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=alice, max_retries=0)
        with pytest.raises(openai.APIError):
            for _ in client.chat.completions.create(model=f"{upstream.name}/mock:drop_after=3",
                                                    messages=CHAT, stream=True):
                pass


class TestDisconnect:
    def test_a_client_disconnect_cancels_the_upstream_request(self, gateway, alice, upstream, fake_openai):
        import time

        body = {"model": f"{upstream.name}/mock:tokens=400,token_delay=0.02", "messages": CHAT, "stream": True}
        with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body,
                          headers={"authorization": f"Bearer {alice}", "x-session-id": "disc"}) as r:
            request_id = r.headers["x-request-id"]
            for i, _ in enumerate(r.iter_raw()):
                if i == 3:
                    break
        deadline = time.time() + 3
        while fake_openai.disconnects == 0 and time.time() < deadline:
            time.sleep(0.02)
        assert fake_openai.disconnects == 1 and fake_openai.completed_streams == 0
        rec = world.wait_record(request_id)
        assert rec.client_disconnected and rec.status == 499


class TestUsageExactlyOnce:
    def test_fifty_concurrent_requests_make_fifty_records(self, gateway, alice, upstream):
        import asyncio

        session = world.unique("burst")

        async def one(client, i):
            body = {"model": f"{upstream.name}/mock:tokens=5", "messages": CHAT, "stream": i % 2 == 0}
            r = await client.post("/v1/chat/completions", json=body)
            return r.status_code, r.headers["x-request-id"]

        async def burst():
            async with httpx.AsyncClient(base_url=gateway.url, timeout=30, headers={
                    "authorization": f"Bearer {alice}", "agent-session-id": session}) as client:
                return await asyncio.gather(*(one(client, i) for i in range(50)))

        results = asyncio.run(burst())
        assert all(status == 200 for status, _ in results)
        rows = world.records_for_session(session, 50)
        assert len(rows) == 50
        assert {r.request_id for r in rows} == {rid for _, rid in results}
        assert all(r.completion_tokens == 5 for r in rows)
        assert UsageRecord.objects.filter(session_id=session).count() == 50


def test_health_endpoints_answer(gateway):
    assert httpx.get(gateway.url + "/health/live").json()["status"] == "ok"
    assert httpx.get(gateway.url + "/health/ready").status_code == 200


def test_claude_code_head_probe_is_answered_without_a_body(gateway):
    r = httpx.head(gateway.url + "/")
    assert r.status_code == 200 and r.content == b""
