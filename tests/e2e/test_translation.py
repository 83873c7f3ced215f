"""Every front door × every upstream format, over real sockets, with the official SDKs."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest

from . import world

TEXT = "Hello world this is a mock completion"
TOOLS_OPENAI = [{"type": "function", "function": {"name": "tree", "description": "List files",
                                                  "parameters": {"type": "object", "properties": {
                                                      "path": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "read", "description": "Read a file",
                                                  "parameters": {"type": "object", "properties": {}}}}]
TOOLS_ANTHROPIC = [{"name": t["function"]["name"], "description": t["function"]["description"],
                    "input_schema": t["function"]["parameters"]} for t in TOOLS_OPENAI]
TOOLS_RESPONSES = [{"type": "function", "name": t["function"]["name"], "description": t["function"]["description"],
                    "parameters": t["function"]["parameters"]} for t in TOOLS_OPENAI]

UPSTREAMS = ["openai_chat", "anthropic", "openai_responses"]
CLIENTS = ["openai_chat", "anthropic", "openai_responses"]


@pytest.fixture
def alice():
    return world.alice_key()


@pytest.fixture
def upstreams(fake_openai, fake_anthropic):
    return {
        "openai_chat": world.provider(fake_openai.url + "/v1", wire_api="chat"),
        "anthropic": world.provider(fake_anthropic.url, type="anthropic"),
        "openai_responses": world.provider(fake_openai.url + "/v1", wire_api="responses"),
    }


def call(client_format: str, gateway, key: str, model: str, *, tools: bool, stream: bool):
    """Returns (text, [(tool name, args dict)], stop kind, usage (in, out))."""
    if client_format == "openai_chat":
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
        kw = {"tools": TOOLS_OPENAI} if tools else {}
        if not stream:
            out = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], **kw)
            msg = out.choices[0].message
            calls = [(c.function.name, json.loads(c.function.arguments)) for c in msg.tool_calls or []]
            return msg.content or "", calls, out.choices[0].finish_reason, (out.usage.prompt_tokens,
                                                                             out.usage.completion_tokens)
        text, calls, finish, usage = "", {}, None, None
        for chunk in client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                                    stream=True, stream_options={"include_usage": True}, **kw):
            if chunk.usage:
                usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            for ch in chunk.choices:
                text += ch.delta.content or ""
                finish = ch.finish_reason or finish
                for tc in ch.delta.tool_calls or []:
                    if tc.index not in calls:
                        assert tc.id and tc.function.name, "first tool-call fragment needs id and name"
                        calls[tc.index] = [tc.function.name, ""]
                    calls[tc.index][1] += tc.function.arguments or ""
        return text, [(n, json.loads(a)) for n, a in calls.values()], finish, usage
    if client_format == "anthropic":
        client = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
        kw = {"tools": TOOLS_ANTHROPIC} if tools else {}
        args = dict(model=model, max_tokens=1024, messages=[{"role": "user", "content": "hi"}], **kw)
        if stream:
            with client.messages.stream(**args) as s:
                for _ in s:
                    pass
                out = s.get_final_message()
        else:
            out = client.messages.create(**args)
        text = "".join(b.text for b in out.content if b.type == "text")
        calls = [(b.name, b.input) for b in out.content if b.type == "tool_use"]
        return text, calls, out.stop_reason, (out.usage.input_tokens, out.usage.output_tokens)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    kw = {"tools": TOOLS_RESPONSES} if tools else {}
    if stream:
        out = None
        for event in client.responses.create(model=model, input="hi", stream=True, **kw):
            if event.type == "response.completed":
                out = event.response
    else:
        out = client.responses.create(model=model, input="hi", **kw)
    calls = [(i.name, json.loads(i.arguments)) for i in out.output if i.type == "function_call"]
    return out.output_text, calls, out.status, (out.usage.input_tokens, out.usage.output_tokens)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("client", CLIENTS)
class TestMatrix:
    def test_text_and_usage_cross_every_pair(self, gateway, alice, upstreams, client, upstream, stream):
        provider = upstreams[upstream]
        text, calls, stop, usage = call(client, gateway, alice, f"{provider.name}/mock", tools=False,
                                        stream=stream)
        assert text == TEXT and calls == []
        assert stop in ("stop", "end_turn", "completed")
        assert usage[0] > 0 and usage[1] > 0

    def test_tool_calls_cross_every_pair(self, gateway, alice, upstreams, client, upstream, stream):
        provider = upstreams[upstream]
        text, calls, stop, usage = call(client, gateway, alice, f"{provider.name}/mock:parallel_tools",
                                        tools=True, stream=stream)
        assert calls == [("tree", {"path": "src", "depth": 2}), ("read", {"path": "README.md"})]
        assert stop in ("tool_calls", "tool_use", "completed")


class TestTranslationDetails:
    def test_an_openai_client_to_anthropic_keeps_system_and_history(self, gateway, alice, upstreams,
                                                                    fake_anthropic):
        provider = upstreams["anthropic"]
        body = {"model": f"{provider.name}/mock", "max_tokens": 300, "temperature": 0.2, "stop": ["END"],
                "messages": [{"role": "system", "content": "Be terse."},
                             {"role": "user", "content": "List files"},
                             {"role": "assistant", "content": None, "tool_calls": [
                                 {"id": "call_1", "type": "function",
                                  "function": {"name": "tree", "arguments": "{\"path\": \".\"}"}}]},
                             {"role": "tool", "tool_call_id": "call_1", "content": "a.py"},
                             {"role": "user", "content": [
                                 {"type": "text", "text": "What is in the image?"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}],
                "tools": TOOLS_OPENAI, "tool_choice": "auto"}
        r = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {alice}"})
        assert r.status_code == 200, r.text
        sent = fake_anthropic.last().body
        assert sent["system"][0]["text"] == "Be terse." if isinstance(sent["system"], list) else \
            sent["system"] == "Be terse."
        assert sent["max_tokens"] == 300 and sent["temperature"] == 0.2 and sent["stop_sequences"] == ["END"]
        roles = [m["role"] for m in sent["messages"]]
        assert roles == ["user", "assistant", "user"]
        assert sent["messages"][1]["content"][0] == {"type": "tool_use", "id": "call_1", "name": "tree",
                                                      "input": {"path": "."}}
        results = sent["messages"][2]["content"]
        assert results[0]["type"] == "tool_result" and results[0]["tool_use_id"] == "call_1"
        assert any(b["type"] == "image" and b["source"]["type"] == "base64" for b in results)
        assert sent["tool_choice"] == {"type": "auto"} and [t["name"] for t in sent["tools"]] == ["tree", "read"]
        assert fake_anthropic.last().headers["x-api-key"] == "sk-upstream-secret"

    def test_empty_tools_are_never_filled_in(self, gateway, alice, upstreams, fake_anthropic, fake_openai):
        for client_tools, upstream in (([], "openai_chat"), ([], "anthropic")):
            provider = upstreams[upstream]
            r = httpx.post(gateway.url + "/v1/messages", headers={"x-api-key": alice, "anthropic-version": "2023-06-01"},
                           json={"model": f"{provider.name}/mock", "max_tokens": 50, "tools": client_tools,
                                 "messages": [{"role": "user", "content": "title?"}]})
            assert r.status_code == 200, r.text
            sent = (fake_anthropic if upstream == "anthropic" else fake_openai).last().body
            assert not sent.get("tools")

    def test_reasoning_effort_becomes_an_anthropic_thinking_budget(self, gateway, alice, upstreams, fake_anthropic):
        provider = upstreams["anthropic"]
        r = httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {alice}"},
                       json={"model": f"{provider.name}/mock:thinking", "reasoning_effort": "high",
                             "max_tokens": 32000, "messages": [{"role": "user", "content": "think"}]})
        assert r.status_code == 200, r.text
        assert fake_anthropic.last().body["thinking"]["type"] == "enabled"
        message = r.json()["choices"][0]["message"]
        assert message["reasoning_content"] and message["thinking_blocks"][0]["signature"]

    def test_anthropic_thinking_reaches_an_anthropic_client_with_its_signature(self, gateway, alice, upstreams):
        provider = upstreams["openai_responses"]
        client = anthropic.Anthropic(base_url=gateway.url, api_key=alice, max_retries=0)
        with client.messages.stream(model=f"{provider.name}/mock:reasoning", max_tokens=2000,
                                    thinking={"type": "enabled", "budget_tokens": 1024},
                                    messages=[{"role": "user", "content": "think"}]) as s:
            out = s.get_final_message()
        thinking = [b for b in out.content if b.type == "thinking"]
        assert thinking and thinking[0].thinking and thinking[0].signature
        assert out.content[-1].text == TEXT

    def test_n_greater_than_one_to_anthropic_is_a_clear_400(self, gateway, alice, upstreams):
        provider = upstreams["anthropic"]
        r = httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {alice}"},
                       json={"model": f"{provider.name}/mock", "n": 2, "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 400 and "n>1" in r.json()["error"]["message"]

    def test_upstream_errors_come_back_in_the_clients_format(self, gateway, alice, upstreams):
        provider = upstreams["openai_chat"]
        r = httpx.post(gateway.url + "/v1/messages", headers={"x-api-key": alice, "anthropic-version": "2023-06-01"},
                       json={"model": f"{provider.name}/mock:status=429", "max_tokens": 10,
                             "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 429
        assert r.json()["type"] == "error" and r.json()["error"]["type"] == "rate_limit_error"
        assert "Rate limit" in r.json()["error"]["message"]

    def test_a_mid_stream_anthropic_error_becomes_an_openai_error_event(self, gateway, alice, upstreams):
        provider = upstreams["anthropic"]
        r = httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {alice}"},
                       json={"model": f"{provider.name}/mock:mid_error", "stream": True,
                             "messages": [{"role": "user", "content": "x"}]})
        events = [e[6:] for e in r.text.split("\n\n") if e.startswith("data: ")]
        assert "[DONE]" not in events and "error" in json.loads(events[-1])
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.status >= 500 and rec.error_type


class TestAnthropicFrontDoor:
    def test_passthrough_forwards_version_and_beta_headers_and_the_query(self, gateway, alice, upstreams,
                                                                       fake_anthropic):
        provider = upstreams["anthropic"]
        r = httpx.post(gateway.url + "/v1/messages?beta=true",
                       headers={"authorization": f"Bearer {alice}", "anthropic-version": "2023-06-01",
                                "anthropic-beta": "interleaved-thinking-2025-05-14,context-management-2025-06-27"},
                       json={"model": f"{provider.name}/mock", "max_tokens": 10, "stream": True,
                             "context_management": {"edits": []},
                             "messages": [{"role": "user", "content": [
                                 {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]}]})
        assert r.status_code == 200
        seen = fake_anthropic.last()
        assert seen.headers["anthropic-beta"].startswith("interleaved-thinking")
        assert seen.body["context_management"] == {"edits": []}
        assert seen.body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
        assert seen.query == "beta=true"  # Claude Code's `?beta=true` reaches api.anthropic.com
        assert "event: message_stop" in r.text

    def test_query_is_not_forwarded_when_translating(self, gateway, alice, upstreams, fake_openai):
        provider = upstreams["openai_chat"]
        r = httpx.post(gateway.url + "/v1/messages?beta=true",
                       headers={"authorization": f"Bearer {alice}", "anthropic-version": "2023-06-01"},
                       json={"model": f"{provider.name}/mock", "max_tokens": 10,
                             "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 200
        assert fake_openai.last().query == ""  # an Anthropic beta flag means nothing to OpenAI

    def test_count_tokens_goes_to_anthropic_or_is_estimated(self, gateway, alice, upstreams, fake_anthropic):
        body = {"messages": [{"role": "user", "content": "Hello there, how many tokens is this?"}]}
        headers = {"x-api-key": alice, "anthropic-version": "2023-06-01"}
        r = httpx.post(gateway.url + "/v1/messages/count_tokens", headers=headers,
                       json={"model": f"{upstreams['anthropic'].name}/mock", **body})
        assert r.status_code == 200 and fake_anthropic.last().path == "/v1/messages/count_tokens"
        assert r.json()["input_tokens"] > 0
        r = httpx.post(gateway.url + "/v1/messages/count_tokens", headers=headers,
                       json={"model": f"{upstreams['openai_chat'].name}/mock", **body})
        assert r.status_code == 200 and 8 <= r.json()["input_tokens"] <= 20

    def test_models_answers_in_anthropic_shape_when_asked_by_an_anthropic_client(self, gateway, alice, upstreams):
        r = httpx.get(gateway.url + "/v1/models", headers={"x-api-key": alice, "anthropic-version": "2023-06-01"})
        assert r.json()["data"][0]["type"] == "model" and "has_more" in r.json()

    def test_a_missing_max_tokens_is_an_anthropic_400(self, gateway, alice):
        r = httpx.post(gateway.url + "/v1/messages", headers={"x-api-key": alice},
                       json={"model": "x", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"

    def test_a_bad_key_is_an_anthropic_401(self, gateway):
        r = httpx.post(gateway.url + "/v1/messages", headers={"x-api-key": "jk-nope"},
                       json={"model": "x", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"

    @pytest.mark.parametrize("upstream", ["openai_chat", "anthropic"])
    def test_a_tool_result_without_its_tool_use_is_a_400(self, gateway, alice, upstreams, upstream):
        r = httpx.post(gateway.url + "/v1/messages", headers={"x-api-key": alice},
                       json={"model": f"{upstreams[upstream].name}/mock", "max_tokens": 5, "messages": [
                           {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x",
                                                         "content": "orphan"}]}]})
        if upstream == "anthropic":  # passthrough: the provider itself judges
            assert r.status_code in (200, 400)
        else:
            assert r.status_code == 400 and "tool_use" in r.json()["error"]["message"]


class TestResponsesFrontDoor:
    def test_previous_response_id_continues_a_stored_conversation_on_any_upstream(self, gateway, alice,
                                                                                  upstreams, fake_anthropic):
        provider = upstreams["anthropic"]
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=alice, max_retries=0)
        first = client.responses.create(model=f"{provider.name}/mock", input="Remember 42.")
        second = client.responses.create(model=f"{provider.name}/mock", input="What number?",
                                         previous_response_id=first.id)
        sent = fake_anthropic.last().body["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "user"]
        assert "Remember 42." in json.dumps(sent[0]) and TEXT in json.dumps(sent[1])
        assert client.responses.retrieve(second.id).id == second.id

    def test_a_stream_is_stored_too(self, gateway, alice, upstreams, fake_anthropic):
        provider = upstreams["anthropic"]
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=alice, max_retries=0)
        done = [e for e in client.responses.create(model=f"{provider.name}/mock", input="A", stream=True)
                if e.type == "response.completed"][0]
        client.responses.create(model=f"{provider.name}/mock", input="B", previous_response_id=done.response.id)
        assert len(fake_anthropic.last().body["messages"]) == 3

    def test_an_unknown_previous_response_is_a_404(self, gateway, alice, upstreams):
        r = httpx.post(gateway.url + "/v1/responses", headers={"authorization": f"Bearer {alice}"},
                       json={"model": f"{upstreams['anthropic'].name}/mock", "input": "x",
                             "previous_response_id": "resp_nope"})
        assert r.status_code == 404 and "not found" in r.json()["error"]["message"]

    def test_hosted_tools_are_mapped_or_dropped_and_only_a_forced_one_is_a_clear_400(
            self, gateway, alice, upstreams, fake_anthropic):
        # Issue 10: an offered hosted tool no longer refuses the request (tests/e2e/test_agent_hosted_tools.py).
        r = httpx.post(gateway.url + "/v1/responses", headers={"authorization": f"Bearer {alice}"},
                       json={"model": f"{upstreams['anthropic'].name}/mock", "input": "x",
                             "tools": [{"type": "web_search"}]})
        assert r.status_code == 200 and fake_anthropic.last().body["tools"][0]["type"] == "web_search_20250305"
        r = httpx.post(gateway.url + "/v1/responses", headers={"authorization": f"Bearer {alice}"},
                       json={"model": f"{upstreams['openai_chat'].name}/mock", "input": "x",
                             "tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}})
        assert r.status_code == 400 and "web_search" in r.json()["error"]["message"]


class TestOllamaFrontDoor:
    def test_an_ollama_client_streams_ndjson_from_an_anthropic_route(self, gateway, alice, upstreams):
        provider = upstreams["anthropic"]
        r = httpx.post(f"{gateway.url}/k/{alice}/api/chat", timeout=30,
                       json={"model": f"{provider.name}/mock", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.text.splitlines() if line]
        assert "".join(line["message"]["content"] for line in lines) == TEXT
        assert lines[-1]["done"] is True and lines[-1]["eval_count"] > 0 and lines[-1]["prompt_eval_count"] > 0
        assert all(not line["done"] for line in lines[:-1])

    def test_an_ollama_client_gets_tool_calls_from_an_openai_route_in_one_object(self, gateway, alice, upstreams):
        provider = upstreams["openai_chat"]
        r = httpx.post(f"{gateway.url}/api/chat", headers={"authorization": f"Bearer {alice}"}, timeout=30,
                       json={"model": f"{provider.name}/mock:tools", "stream": False, "tools": TOOLS_OPENAI,
                             "messages": [{"role": "user", "content": "list"}]})
        out = r.json()
        assert out["done"] is True
        assert out["message"]["tool_calls"][0]["function"] == {"name": "tree", "arguments": {"path": "src", "depth": 2}}

    def test_tags_lists_what_the_key_may_use(self, gateway, alice, upstreams):
        names = [m["name"] for m in httpx.get(f"{gateway.url}/k/{alice}/api/tags").json()["models"]]
        assert f"{upstreams['anthropic'].name}/mock" in names
        assert httpx.get(gateway.url + "/api/version").json()["version"]


class TestOutputLimits:
    """Claude Code asks for max_tokens 32000; gpt-4o answers at most 16,384 output tokens and
    the real API refuses more. Translated requests are clamped to the target's limit."""

    def test_a_translated_request_is_clamped_to_the_known_limit_and_recorded(self, gateway, alice, upstreams,
                                                                             fake_openai):
        provider = upstreams["openai_chat"]
        r = httpx.post(gateway.url + "/v1/messages",
                       headers={"x-api-key": alice, "anthropic-version": "2023-06-01"},
                       json={"model": f"{provider.name}/gpt-4o", "max_tokens": 32000,
                             "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 200, r.text
        assert fake_openai.last().body["max_tokens"] == 16384
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.attempt_chain[0]["max_tokens_clamped"] == [32000, 16384]

    def test_a_provider_model_override_wins(self, gateway, alice, fake_anthropic):
        provider = world.provider(fake_anthropic.url, type="anthropic")
        world.price(provider, "mock", 1, 1, max_output_tokens=2000)
        r = httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {alice}"},
                       json={"model": f"{provider.name}/mock", "max_tokens": 5000,
                             "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 200, r.text
        assert fake_anthropic.last().body["max_tokens"] == 2000
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.attempt_chain[0]["max_tokens_clamped"] == [5000, 2000]

    def test_a_request_within_the_limit_is_untouched(self, gateway, alice, upstreams, fake_openai):
        provider = upstreams["openai_chat"]
        r = httpx.post(gateway.url + "/v1/messages",
                       headers={"x-api-key": alice, "anthropic-version": "2023-06-01"},
                       json={"model": f"{provider.name}/gpt-4o", "max_tokens": 1000,
                             "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 200 and fake_openai.last().body["max_tokens"] == 1000
        assert "max_tokens_clamped" not in world.wait_record(r.headers["x-request-id"]).attempt_chain[0]


class TestThinkingRoundTrip:
    """The Anthropic fake signs the thinking it sends and verifies it when it comes back: a
    second turn through any client format must return thinking, signature and tool pairing intact."""

    def test_openai_chat_client_second_turn(self, gateway, alice, upstreams, fake_anthropic):
        model = f"{upstreams['anthropic'].name}/mock:thinking,tools"
        first = [{"role": "user", "content": "list files"}]
        body = {"model": model, "reasoning_effort": "low", "max_tokens": 4000, "tools": TOOLS_OPENAI}
        r = httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {alice}"},
                       json={**body, "messages": first})
        assert r.status_code == 200, r.text
        message = r.json()["choices"][0]["message"]
        assert message["thinking_blocks"] and message["tool_calls"]
        follow = first + [message] + [{"role": "tool", "tool_call_id": c["id"], "content": "a.py"}
                                      for c in message["tool_calls"]]
        r = httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {alice}"},
                       json={**body, "messages": follow})
        assert r.status_code == 200, (r.text, fake_anthropic.rejected)
        sent = fake_anthropic.last().body["messages"][1]["content"]
        assert sent[0]["type"] == "thinking" and sent[0]["signature"]

    def test_anthropic_client_second_turn(self, gateway, alice, upstreams, fake_anthropic):
        client = anthropic.Anthropic(base_url=gateway.url, api_key=alice, max_retries=0)
        args = dict(model=f"{upstreams['anthropic'].name}/mock:thinking,tools", max_tokens=4000,
                    thinking={"type": "enabled", "budget_tokens": 1024}, tools=TOOLS_ANTHROPIC)
        first = [{"role": "user", "content": "list files"}]
        with client.messages.stream(messages=first, **args) as s:
            out = s.get_final_message()
        uses = [b for b in out.content if b.type == "tool_use"]
        content = [b.model_dump(exclude_none=True) for b in out.content]
        follow = first + [{"role": "assistant", "content": content},
                          {"role": "user", "content": [
                              {"type": "tool_result", "tool_use_id": u.id, "content": "a"} for u in uses]}]
        again = client.messages.create(messages=follow, **args)
        assert again.content and not fake_anthropic.rejected

    def test_responses_client_second_turn(self, gateway, alice, upstreams, fake_anthropic):
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=alice, max_retries=0)
        args = dict(model=f"{upstreams['anthropic'].name}/mock:thinking,tools", tools=TOOLS_RESPONSES,
                    reasoning={"effort": "low"}, max_output_tokens=4000, store=False,
                    include=["reasoning.encrypted_content"])
        first = [{"role": "user", "content": "list files"}]
        out = client.responses.create(input=first, **args)
        items = [i.model_dump(exclude_none=True) for i in out.output]
        assert any(i["type"] == "reasoning" for i in items)
        calls = [i for i in items if i["type"] == "function_call"]
        follow = first + items + [{"type": "function_call_output", "call_id": c["call_id"], "output": "a.py"}
                                  for c in calls]
        again = client.responses.create(input=follow, **args)
        assert again.status == "completed" and not fake_anthropic.rejected
        sent = fake_anthropic.last().body["messages"][1]["content"]
        assert sent[0]["type"] == "thinking"
