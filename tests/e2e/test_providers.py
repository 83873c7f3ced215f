"""Every provider type behind the real gateway, against fake upstreams on real sockets.

One contract suite runs for each type (openai, anthropic, ollama, openrouter,
azure, bedrock): answers, streams, tools, recorded usage, fallback on 429 / 5xx /
timeout, and a clear 502 in the client's format for bytes that are not the
provider's format. Each type's own conventions follow in its own class, then model
discovery (`sync_models`) and the per-provider settings (timeouts, extra headers).

No llama.cpp end-to-end test: no package on PyPI ships a llama.cpp server
together with a small GGUF model that installs without downloading weights or
building from source, so a real local model server cannot be part of the suite.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from dataclasses import dataclass, field
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest
from django.core.management import CommandError, call_command

from providers.models import Provider, ProviderModel
from tests.fakes import azure as fake_azure_module
from tests.fakes import bedrock as fake_bedrock_module

from . import world

TEXT = "Hello world this is a mock completion"
CHAT = [{"role": "user", "content": "Say hello"}]
TOOLS = [{"type": "function", "function": {"name": "tree", "description": "List files", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}, "depth": {"type": "integer"}}}}},
         {"type": "function", "function": {"name": "read", "description": "Read a file",
                                           "parameters": {"type": "object", "properties": {}}}}]


@dataclass(frozen=True)
class Kind:
    """How to point a provider of one type at its fake, and how that fake reads behaviours."""

    type: str
    fake: str  # fixture name
    model: str  # a normal model id on that fake
    sep: str = ":"  # behaviour separator (Ollama and Bedrock ids contain ':' themselves)
    path: str = ""  # appended to the fake's URL for base_url
    fields: dict = field(default_factory=dict)

    def m(self, behaviour: str = "") -> str:
        return self.model + (self.sep + behaviour if behaviour else "")

    def provider(self, fake, **fields) -> Provider:
        return world.provider(fake.url + self.path, type=self.type, model=self.model, **{**self.fields, **fields})


KINDS = {
    "openai": Kind("openai", "fake_openai", "mock", path="/v1"),
    "anthropic": Kind("anthropic", "fake_anthropic", "mock"),
    "ollama": Kind("ollama", "fake_ollama", "qwen2.5-coder:14b", sep="#", fields={"api_key": ""}),
    "openrouter": Kind("openrouter", "fake_openrouter", "openai/gpt-4o", path="/api/v1"),
    "azure": Kind("azure", "fake_azure", "mock", fields={"api_key": fake_azure_module.API_KEY}),
    "bedrock": Kind("bedrock", "fake_bedrock", "anthropic.claude-sonnet-4-v1:0", sep="#", fields={
        "api_key": "", "region": fake_bedrock_module.REGION, "aws_access_key_id": fake_bedrock_module.ACCESS_KEY,
        "aws_secret_access_key": fake_bedrock_module.SECRET_KEY}),
}


@pytest.fixture
def alice():
    return world.alice_key()


@pytest.fixture
def backup(fake_openai):
    """A healthy second target for fallback tests."""
    return world.provider(fake_openai.url + "/v1")


def chat(gateway, key, body, **kw):
    return httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {key}", **kw.pop("headers", {})}, **kw)


def messages(gateway, key, body):
    return httpx.post(gateway.url + "/v1/messages", json={"max_tokens": 256, **body}, timeout=30,
                      headers={"x-api-key": key, "anthropic-version": "2023-06-01"})


def sse_data(text: str) -> list[str]:
    return [e[len("data: "):] for e in text.split("\n\n") if e.startswith("data: ")]


def stream_text_and_calls(text: str) -> tuple[str, dict, str | None, dict | None]:
    """OpenAI chat SSE → (text, {index: [name, args]}, finish_reason, usage)."""
    content, calls, finish, usage = "", {}, None, None
    events = sse_data(text)
    assert events[-1] == "[DONE]", text[-300:]
    for event in events[:-1]:
        chunk = json.loads(event)
        usage = chunk.get("usage") or usage
        for choice in chunk["choices"]:
            content += choice["delta"].get("content") or ""
            finish = choice.get("finish_reason") or finish
            for call in choice["delta"].get("tool_calls") or []:
                entry = calls.setdefault(call["index"], ["", ""])
                entry[0] = entry[0] or call.get("function", {}).get("name") or ""
                entry[1] += call.get("function", {}).get("arguments") or ""
    return content, calls, finish, usage


# =========================================================================== the contract


@pytest.fixture(params=list(KINDS))
def kind(request) -> Kind:
    return KINDS[request.param]


@pytest.fixture
def fake(kind, request):
    return request.getfixturevalue(kind.fake)


@pytest.fixture
def upstream(kind, fake) -> Provider:
    p = kind.provider(fake)
    if kind.type != "ollama":
        world.price(p, kind.model, input_price=3, output_price=15)
    return p


class TestContract:
    def test_an_answer_comes_back_and_its_usage_is_recorded(self, gateway, alice, kind, upstream):
        r = chat(gateway, alice, {"model": upstream.name, "messages": CHAT})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["choices"][0]["message"]["content"] == TEXT
        assert body["choices"][0]["finish_reason"] == "stop"
        assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0
        assert r.headers["x-gateway-provider"] == upstream.name
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.status == 200 and rec.provider == upstream.name and not rec.usage_estimated
        assert rec.prompt_tokens == body["usage"]["prompt_tokens"]
        assert rec.completion_tokens == body["usage"]["completion_tokens"]
        if kind.type == "ollama":
            assert rec.cost_usd == 0, "local models cost nothing"
        else:
            assert rec.cost_usd > 0

    def test_a_stream_relays_every_token_and_records_usage(self, gateway, alice, kind, upstream):
        r = chat(gateway, alice, {"model": upstream.name, "messages": CHAT, "stream": True,
                                  "stream_options": {"include_usage": True}})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        text, calls, finish, usage = stream_text_and_calls(r.text)
        assert text == TEXT and calls == {} and finish == "stop"
        assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.stream and rec.status == 200 and not rec.usage_estimated
        assert rec.completion_tokens == usage["completion_tokens"] and rec.ttft_ms is not None

    @pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
    def test_tool_calls_come_back_in_the_clients_format(self, gateway, alice, kind, upstream, stream):
        r = chat(gateway, alice, {"model": f"{upstream.name}/{kind.m('tools')}", "messages": CHAT,
                                  "tools": TOOLS, "stream": stream})
        assert r.status_code == 200, r.text
        if stream:
            _, calls, finish, _ = stream_text_and_calls(r.text)
            found = [(name, json.loads(args)) for name, args in calls.values()]
        else:
            message = r.json()["choices"][0]["message"]
            finish = r.json()["choices"][0]["finish_reason"]
            assert all(c["id"] for c in message["tool_calls"])
            found = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]]
        assert found == [("tree", {"path": "src", "depth": 2})]
        assert finish == "tool_calls"

    @pytest.mark.parametrize("failure,stream", [("status=429", False), ("status=429", True),
                                                ("status=500", False), ("status=503", True)])
    def test_an_upstream_failure_before_the_first_byte_falls_back(self, gateway, alice, kind, upstream, backup,
                                                                   failure, stream):
        name = world.unique("contract")
        world.route(name, [(upstream, kind.m(failure)), (backup, "mock")])
        r = chat(gateway, alice, {"model": name, "messages": CHAT, "stream": stream})
        assert r.status_code == 200, r.text
        assert r.headers["x-gateway-provider"] == backup.name and r.headers["x-gateway-attempts"] == "2"
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.attempt_chain[0]["status"] == int(failure.split("=")[1])
        assert rec.attempt_chain[1]["status"] == 200 and rec.status == 200

    def test_a_stalled_upstream_times_out_and_falls_back(self, gateway, alice, kind, fake, backup):
        slow = kind.provider(fake, first_token_timeout=0.3)
        name = world.unique("contract")
        world.route(name, [(slow, kind.m("hang")), (backup, "mock")])
        started = time.monotonic()
        r = chat(gateway, alice, {"model": name, "messages": CHAT, "stream": True})
        assert r.status_code == 200 and r.headers["x-gateway-provider"] == backup.name
        assert time.monotonic() - started < 5
        rec = world.wait_record(r.headers["x-request-id"])
        assert [a.get("error") for a in rec.attempt_chain] == ["timeout", None]

    @pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
    def test_bytes_that_are_not_the_providers_format_are_a_clear_502_for_an_openai_client(
            self, gateway, alice, kind, upstream, stream):
        r = chat(gateway, alice, {"model": f"{upstream.name}/{kind.m('garbage')}", "messages": CHAT,
                                  "stream": stream})
        assert r.status_code == 502
        error = r.json()["error"]
        assert upstream.name in error["message"] and "this is not json" in error["message"]
        assert world.wait_record(r.headers["x-request-id"]).status == 502

    def test_bytes_that_are_not_the_providers_format_are_a_clear_502_for_an_anthropic_client(
            self, gateway, alice, kind, upstream):
        r = messages(gateway, alice, {"model": f"{upstream.name}/{kind.m('garbage')}", "messages": CHAT})
        assert r.status_code == 502
        body = r.json()
        assert body["type"] == "error" and upstream.name in body["error"]["message"]


# =========================================================================== Ollama


class TestOllama:
    @pytest.fixture
    def ollama(self, fake_ollama):
        return KINDS["ollama"].provider(fake_ollama)

    def ollama_chat(self, gateway, key, body):
        return httpx.post(gateway.url + "/api/chat", json=body, timeout=30, headers={"authorization": f"Bearer {key}"})

    def test_an_ollama_client_gets_the_upstream_ndjson_unchanged(self, gateway, alice, ollama, fake_ollama):
        body = {"model": f"{ollama.name}/qwen2.5-coder:14b", "messages": CHAT, "keep_alive": "10m",
                "options": {"num_ctx": 8192, "temperature": 0.2}}  # no `stream`: Ollama's default is true
        r = self.ollama_chat(gateway, alice, body)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.text.splitlines()]
        assert "".join(line["message"]["content"] for line in lines) == TEXT
        final = lines[-1]
        # The fake's own counters: re-encoding would have computed durations of its own.
        assert final["done"] and final["total_duration"] == 1234567890 and final["load_duration"] == 1019500
        sent = fake_ollama.last()
        assert sent.path == "/api/chat" and sent.body["stream"] is True
        assert sent.body["keep_alive"] == "10m" and sent.body["options"] == {"num_ctx": 8192, "temperature": 0.2}
        assert sent.body["model"] == "qwen2.5-coder:14b"
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.prompt_tokens == final["prompt_eval_count"] and rec.completion_tokens == final["eval_count"]
        assert rec.cost_usd == 0 and not rec.usage_estimated

    def test_an_ollama_client_without_streaming_gets_one_object(self, gateway, alice, ollama):
        r = self.ollama_chat(gateway, alice, {"model": ollama.name, "messages": CHAT, "stream": False})
        assert r.status_code == 200 and r.json()["message"]["content"] == TEXT and r.json()["done"]

    def test_an_ollama_client_gets_thinking_and_tool_calls(self, gateway, alice, ollama):
        r = self.ollama_chat(gateway, alice, {"model": f"{ollama.name}/qwen2.5-coder:14b#tools,thinking",
                                              "messages": CHAT, "tools": TOOLS})
        lines = [json.loads(line) for line in r.text.splitlines()]
        assert "".join(line["message"].get("thinking", "") for line in lines) == "Let me think about it."
        calls = [c for line in lines for c in line["message"].get("tool_calls") or []]
        assert calls == [{"function": {"name": "tree", "arguments": {"path": "src", "depth": 2}}}]

    def test_a_mid_stream_error_ends_the_ollama_stream_with_its_error_line(self, gateway, alice, ollama):
        r = self.ollama_chat(gateway, alice, {"model": f"{ollama.name}/qwen2.5-coder:14b#mid_error=2",
                                              "messages": CHAT})
        last = json.loads(r.text.splitlines()[-1])
        assert "error" in last
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.status >= 500 and "unexpected EOF" in rec.error_message

    def test_an_openai_client_to_ollama_sends_ollama_options(self, gateway, alice, ollama, fake_ollama):
        r = chat(gateway, alice, {"model": ollama.name, "messages": CHAT, "max_tokens": 50, "temperature": 0.1})
        assert r.status_code == 200
        sent = fake_ollama.last().body
        assert sent["stream"] is False and sent["options"] == {"num_predict": 50, "temperature": 0.1}

    def test_embeddings_are_mapped_to_api_embed_and_back(self, gateway, alice, ollama, fake_ollama):
        r = httpx.post(gateway.url + "/v1/embeddings", headers={"authorization": f"Bearer {alice}"},
                       json={"model": f"{ollama.name}/nomic-embed-text", "input": ["first text", "second"],
                             "dimensions": 4})
        assert r.status_code == 200, r.text
        sent = fake_ollama.last()
        assert sent.path == "/api/embed"
        assert sent.body == {"model": "nomic-embed-text", "input": ["first text", "second"], "dimensions": 4}
        body = r.json()
        assert body["object"] == "list" and body["model"] == "nomic-embed-text"
        assert [d["index"] for d in body["data"]] == [0, 1] and all(d["object"] == "embedding" for d in body["data"])
        assert body["data"][1]["embedding"] == pytest.approx([0.2, 0.2, -0.3, 0.05])
        assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.prompt_tokens == body["usage"]["prompt_tokens"] and rec.cost_usd == 0

    def test_the_openai_sdk_gets_its_base64_embeddings(self, gateway, alice, ollama):
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=alice, max_retries=0)
        out = client.embeddings.create(model=f"{ollama.name}/nomic-embed-text", input="hello")
        assert out.data[0].embedding == pytest.approx([0.1, 0.2, -0.3, 0.05], abs=1e-6)
        raw = httpx.post(gateway.url + "/v1/embeddings", headers={"authorization": f"Bearer {alice}"},
                         json={"model": f"{ollama.name}/nomic-embed-text", "input": "hello",
                               "encoding_format": "base64"}).json()
        values = struct.unpack("<4f", base64.b64decode(raw["data"][0]["embedding"]))
        assert values == pytest.approx((0.1, 0.2, -0.3, 0.05), abs=1e-6)

    def test_token_id_inputs_are_refused_clearly(self, gateway, alice, ollama):
        r = httpx.post(gateway.url + "/v1/embeddings", headers={"authorization": f"Bearer {alice}"},
                       json={"model": f"{ollama.name}/nomic-embed-text", "input": [[1, 2, 3]]})
        assert r.status_code == 400 and "token ids" in r.json()["error"]["message"]

    def test_an_empty_base_url_follows_ollama_host(self, monkeypatch):
        p = Provider(name="local", type="ollama", base_url="")
        assert p.effective_base_url() == "http://localhost:11434"
        monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0:11500")
        assert p.effective_base_url() == "http://127.0.0.1:11500"
        monkeypatch.setenv("OLLAMA_HOST", "https://ollama.internal.example")
        assert p.effective_base_url() == "https://ollama.internal.example:443"
        assert Provider(type="ollama", base_url="http://gpu-box:11434").effective_base_url() == "http://gpu-box:11434"


# =========================================================================== OpenRouter


class TestOpenRouter:
    @pytest.fixture
    def router(self, fake_openrouter):
        return KINDS["openrouter"].provider(fake_openrouter)

    @pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
    def test_usage_accounting_is_asked_for_and_the_reported_cost_is_recorded(self, gateway, alice, router,
                                                                            fake_openrouter, stream):
        # No admin price: the provider's figure comes before the price database (an admin price
        # would come first: tests/e2e/test_prices.py::test_an_admin_price_wins_over_the_providers_reported_cost).
        r = chat(gateway, alice, {"model": router.name, "messages": CHAT, "stream": stream})
        assert r.status_code == 200
        sent = fake_openrouter.last().body
        assert sent["usage"] == {"include": True}
        rec = world.wait_record(r.headers["x-request-id"])
        expected = round((rec.prompt_tokens + rec.completion_tokens) * 0.00001, 8)
        assert rec.prompt_tokens > 0 and rec.cost_usd == Decimal(str(expected))
        assert rec.price_source == "provider"

    def test_attribution_headers_are_sent(self, gateway, alice, router, fake_openrouter):
        chat(gateway, alice, {"model": router.name, "messages": CHAT})
        headers = fake_openrouter.last().headers
        assert headers["http-referer"] == "http://localhost" and headers["x-title"] == "Junction"
        assert headers["authorization"] == "Bearer sk-upstream-secret"

    def test_extra_headers_override_the_attribution(self, gateway, alice, fake_openrouter):
        p = KINDS["openrouter"].provider(fake_openrouter, extra_headers={"x-title": "Team Blue",
                                                                         "HTTP-Referer": "https://blue.example"})
        chat(gateway, alice, {"model": p.name, "messages": CHAT})
        rec = fake_openrouter.last()
        assert rec.headers["x-title"] == "Team Blue" and rec.headers["http-referer"] == "https://blue.example"

    def test_provider_preferences_pass_through_untouched(self, gateway, alice, router, fake_openrouter):
        prefs = {"provider": {"order": ["anthropic", "openai"], "allow_fallbacks": False, "sort": "price"},
                 "models": ["anthropic/claude-sonnet-4.5", "openai/gpt-4o"], "route": "fallback",
                 "transforms": ["middle-out"]}
        r = chat(gateway, alice, {"model": router.name, "messages": CHAT, **prefs})
        assert r.status_code == 200
        sent = fake_openrouter.last().body
        assert {k: sent[k] for k in prefs} == prefs

    def test_an_openrouter_error_keeps_its_status_and_message(self, gateway, alice, router, backup):
        r = chat(gateway, alice, {"model": f"{router.name}/openai/gpt-4o:status=402", "messages": CHAT})
        assert r.status_code == 402 and "Insufficient credits" in r.json()["error"]["message"]
        name = world.unique("or")
        world.route(name, [(router, "openai/gpt-4o:status=503"), (backup, "mock")])
        r = chat(gateway, alice, {"model": name, "messages": CHAT})
        assert r.status_code == 200 and r.headers["x-gateway-provider"] == backup.name

    def test_out_of_credits_moves_to_the_next_target_and_counts_for_the_circuit(self, gateway, alice, router,
                                                                               backup, fake_openrouter):
        """One provider's empty wallet must not fail the request when another target can serve it."""
        name = world.unique("or402")
        world.route(name, [(router, "openai/gpt-4o:status=402"), (backup, "mock")])
        r = chat(gateway, alice, {"model": name, "messages": CHAT})
        assert r.status_code == 200 and r.headers["x-gateway-provider"] == backup.name
        rec = world.wait_record(r.headers["x-request-id"])
        chain = [(a["provider"], a["status"]) for a in rec.attempt_chain]
        assert chain == [(router.name, 402), (backup.name, 200)]
        from routing.stats import counts_as_failure
        assert counts_as_failure(402)

    def test_out_of_credits_is_not_retried_on_the_same_target(self, gateway, alice, router, fake_openrouter):
        r = chat(gateway, alice, {"model": f"{router.name}/openai/gpt-4o:status=402", "messages": CHAT})
        assert r.status_code == 402 and r.headers["x-gateway-attempts"] == "1"
        assert len(fake_openrouter.requests) == 1  # no backoff round for an empty wallet
        name = world.unique("or402b")  # nor in the retry round another target's 503 starts
        world.route(name, [(router, "openai/gpt-4o:status=402"), (router, "openai/gpt-4o:status=503")])
        fake_openrouter.reset()
        r = chat(gateway, alice, {"model": name, "messages": CHAT})
        assert r.status_code >= 500
        assert sum(1 for q in fake_openrouter.requests if q.body["model"].endswith("status=402")) == 1

    def test_a_mid_stream_error_ends_the_stream_with_an_error_event(self, gateway, alice, router):
        r = chat(gateway, alice, {"model": f"{router.name}/openai/gpt-4o:mid_error", "messages": CHAT,
                                  "stream": True})
        assert r.status_code == 200
        events = [json.loads(e) for e in sse_data(r.text) if e != "[DONE]"]
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c.get("choices")) == \
            "Hello world"
        assert "error" in events[-1]
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.status >= 500

    def test_an_anthropic_client_sees_the_mid_stream_error_as_an_error_event(self, gateway, alice, router):
        client = anthropic.Anthropic(base_url=gateway.url, api_key=alice, max_retries=0)
        with pytest.raises(anthropic.APIError):
            with client.messages.stream(model=f"{router.name}/openai/gpt-4o:mid_error", max_tokens=100,
                                        messages=CHAT) as s:
                for _ in s:
                    pass


# =========================================================================== Azure OpenAI


class TestAzure:
    KEY = fake_azure_module.API_KEY

    def azure(self, fake_azure, **fields):
        return KINDS["azure"].provider(fake_azure, **fields)

    def test_a_model_goes_to_its_deployment_with_the_api_version_and_key(self, gateway, alice, fake_azure):
        p = self.azure(fake_azure)
        ProviderModel.objects.create(provider=p, model_id="gpt-4o", deployment="mock-prod-eu")
        r = chat(gateway, alice, {"model": f"{p.name}/gpt-4o", "messages": CHAT})
        assert r.status_code == 200, r.text
        sent = fake_azure.last()
        assert sent.path == "/openai/deployments/mock-prod-eu/chat/completions"
        assert sent.query == "api-version=2024-10-21"
        assert sent.headers["api-key"] == self.KEY and "authorization" not in sent.headers

    def test_a_model_without_a_deployment_uses_its_own_name(self, gateway, alice, fake_azure):
        p = self.azure(fake_azure, api_version="2025-04-01-preview")
        chat(gateway, alice, {"model": f"{p.name}/mock:tokens=2", "messages": CHAT})
        assert fake_azure.last().path == "/openai/deployments/mock:tokens=2/chat/completions"
        assert fake_azure.last().query == "api-version=2025-04-01-preview"

    @pytest.mark.parametrize("fields", [{"api_version": "v1"}, {"base_url_suffix": "/openai/v1"}],
                             ids=["api_version", "base_url"])
    def test_the_v1_api_puts_the_deployment_in_the_body(self, gateway, alice, fake_azure, fields):
        if fields.pop("base_url_suffix", None):
            p = world.provider(fake_azure.url + "/openai/v1", type="azure", api_key=self.KEY)
        else:
            p = self.azure(fake_azure, **fields)
        ProviderModel.objects.create(provider=p, model_id="gpt-4o", deployment="mock")
        r = chat(gateway, alice, {"model": f"{p.name}/gpt-4o", "messages": CHAT, "stream": True})
        assert r.status_code == 200 and stream_text_and_calls(r.text)[0] == TEXT
        sent = fake_azure.last()
        assert sent.path == "/openai/v1/chat/completions" and sent.query == ""
        assert sent.body["model"] == "mock"

    def test_an_entra_token_is_sent_as_a_bearer_token(self, gateway, alice, fake_azure):
        token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJjb2duaXRpdmVzZXJ2aWNlcyJ9.c2lnbmF0dXJl"
        p = self.azure(fake_azure, api_key=token)
        r = chat(gateway, alice, {"model": p.name, "messages": CHAT})
        assert r.status_code == 200
        headers = fake_azure.last().headers
        assert headers["authorization"] == "Bearer " + token and "api-key" not in headers

    def test_a_wrong_key_is_the_gateways_problem_not_the_clients(self, gateway, alice, fake_azure):
        p = self.azure(fake_azure, api_key="not-the-key")
        r = chat(gateway, alice, {"model": p.name, "messages": CHAT})
        assert r.status_code == 502 and "provider credentials" in r.json()["error"]["message"]

    def test_a_responses_client_uses_the_v1_responses_path(self, gateway, alice, fake_azure):
        p = self.azure(fake_azure)
        ProviderModel.objects.create(provider=p, model_id="gpt-4.1", deployment="mock")
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=alice, max_retries=0)
        out = client.responses.create(model=f"{p.name}/gpt-4.1", input="hi", store=False)
        assert out.output_text == TEXT
        sent = fake_azure.last()
        assert sent.path == "/openai/v1/responses" and sent.body["model"] == "mock"

    def test_a_chat_only_azure_provider_translates_responses_clients(self, gateway, alice, fake_azure):
        p = self.azure(fake_azure, wire_api="chat")
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=alice, max_retries=0)
        assert client.responses.create(model=p.name, input="hi", store=False).output_text == TEXT
        assert fake_azure.last().path == "/openai/deployments/mock/chat/completions"

    def test_embeddings_go_to_the_deployment(self, gateway, alice, fake_azure):
        p = self.azure(fake_azure)
        ProviderModel.objects.create(provider=p, model_id="text-embedding-3-small", deployment="emb-small")
        r = httpx.post(gateway.url + "/v1/embeddings", headers={"authorization": f"Bearer {alice}"},
                       json={"model": f"{p.name}/text-embedding-3-small", "input": "hello"})
        assert r.status_code == 200 and r.json()["data"][0]["embedding"]
        assert fake_azure.last().path == "/openai/deployments/emb-small/embeddings"

    def test_a_content_filter_block_is_a_clear_client_error_without_fallback(self, gateway, alice, fake_azure,
                                                                           backup):
        p = self.azure(fake_azure)
        name = world.unique("az")
        world.route(name, [(p, "mock:content_filter"), (backup, "mock")])
        r = chat(gateway, alice, {"model": name, "messages": CHAT})
        assert r.status_code == 400 and r.headers["x-gateway-attempts"] == "1"
        error = r.json()["error"]
        assert error["message"] == "Azure content filter blocked the request: violence (medium)"
        assert error["type"] == "invalid_request_error"
        r = messages(gateway, alice, {"model": f"{p.name}/mock:content_filter", "messages": CHAT})
        assert r.status_code == 400 and "violence" in r.json()["error"]["message"]

    def test_a_filtered_completion_is_relayed_as_such(self, gateway, alice, fake_azure):
        p = self.azure(fake_azure)
        r = chat(gateway, alice, {"model": f"{p.name}/mock:filtered_output", "messages": CHAT})
        assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] == "content_filter"
        r = messages(gateway, alice, {"model": f"{p.name}/mock:filtered_output", "messages": CHAT})
        assert r.status_code == 200 and r.json()["stop_reason"] == "refusal"


# =========================================================================== AWS Bedrock


class TestBedrock:
    kind = KINDS["bedrock"]

    @pytest.fixture
    def bedrock(self, fake_bedrock):
        return self.kind.provider(fake_bedrock)

    def test_requests_are_signed_and_the_fake_verifies_the_signature(self, gateway, alice, bedrock, fake_bedrock):
        before = fake_bedrock.rejected_signatures
        r = chat(gateway, alice, {"model": bedrock.name, "messages": CHAT})
        assert r.status_code == 200, r.text
        sent = fake_bedrock.last()
        assert sent.headers["authorization"].startswith(
            f"AWS4-HMAC-SHA256 Credential={fake_bedrock_module.ACCESS_KEY}/")
        assert "/us-east-1/bedrock/aws4_request" in sent.headers["authorization"]
        assert sent.path == "/model/anthropic.claude-sonnet-4-v1:0/converse"
        assert "model" not in sent.body and sent.body["messages"][0]["content"] == [{"text": "Say hello"}]
        assert fake_bedrock.rejected_signatures == before

    def test_an_inference_profile_arn_is_encoded_and_signed_as_sent(self, gateway, alice, bedrock, fake_bedrock):
        arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-v1:0"
        r = chat(gateway, alice, {"model": f"{bedrock.name}/{arn}", "messages": CHAT, "stream": True})
        assert r.status_code == 200, r.text
        assert stream_text_and_calls(r.text)[0] == TEXT
        assert fake_bedrock.last().path == f"/model/{arn}/converse-stream"

    def test_a_wrong_secret_is_refused_by_the_fake_and_reported_as_the_gateways_problem(
            self, gateway, alice, fake_bedrock):
        p = self.kind.provider(fake_bedrock, aws_secret_access_key="wrong/secret/key")
        before = fake_bedrock.rejected_signatures
        r = chat(gateway, alice, {"model": p.name, "messages": CHAT})
        assert r.status_code == 502 and "signature" in r.json()["error"]["message"]
        assert fake_bedrock.rejected_signatures == before + 1

    def test_missing_credentials_are_a_clear_error(self, gateway, alice, fake_bedrock):
        p = self.kind.provider(fake_bedrock, aws_access_key_id="", aws_secret_access_key="",
                               aws_profile="junction-no-such-profile")
        r = chat(gateway, alice, {"model": p.name, "messages": CHAT})
        assert r.status_code == 502
        assert "AWS credentials" in r.json()["error"]["message"] and "junction-no-such-profile" in r.text

    def test_throttling_is_a_retryable_429(self, gateway, alice, bedrock):
        r = chat(gateway, alice, {"model": f"{bedrock.name}/{self.kind.m('status=429')}", "messages": CHAT})
        assert r.status_code == 429 and "Too many requests" in r.json()["error"]["message"]
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.error_type == "rate_limit"

    def test_an_anthropic_client_gets_thinking_and_tool_use_from_the_event_stream(self, gateway, alice, bedrock):
        client = anthropic.Anthropic(base_url=gateway.url, api_key=alice, max_retries=0)
        tools = [{"name": t["function"]["name"], "description": t["function"]["description"],
                  "input_schema": t["function"]["parameters"]} for t in TOOLS]
        with client.messages.stream(model=f"{bedrock.name}/{self.kind.m('thinking,parallel_tools,cached=40')}",
                                    max_tokens=4096, messages=CHAT, tools=tools,
                                    thinking={"type": "enabled", "budget_tokens": 1024}) as s:
            for _ in s:
                pass
            out = s.get_final_message()
        kinds = [b.type for b in out.content]
        assert kinds == ["thinking", "tool_use", "tool_use"]
        assert out.content[0].thinking == "Let me think about it." and out.content[0].signature
        assert [(b.name, b.input) for b in out.content[1:]] == [("tree", {"path": "src", "depth": 2}),
                                                                 ("read", {"path": "README.md"})]
        assert out.stop_reason == "tool_use" and out.usage.cache_read_input_tokens == 40

    def test_a_mid_stream_exception_ends_the_stream_with_an_error_event(self, gateway, alice, bedrock):
        r = chat(gateway, alice, {"model": f"{bedrock.name}/{self.kind.m('mid_error=throttlingException')}",
                                  "messages": CHAT, "stream": True})
        assert r.status_code == 200
        last = json.loads([e for e in sse_data(r.text) if e != "[DONE]"][-1])
        assert "error" in last and "injected" in last["error"]["message"]
        rec = world.wait_record(r.headers["x-request-id"])
        assert rec.status == 429 and rec.error_type == "rate_limit"


# =========================================================================== model discovery


def sync(provider: Provider) -> str:
    from io import StringIO

    out = StringIO()
    call_command("sync_models", provider.name, stdout=out)
    return out.getvalue()


def prices(provider: Provider) -> dict[str, tuple]:
    return {m.model_id: (float(m.input_price), float(m.output_price),
                         None if m.cache_read_price is None else float(m.cache_read_price),
                         None if m.cache_write_price is None else float(m.cache_write_price), m.context_window)
            for m in ProviderModel.objects.filter(provider=provider)}


class TestSyncModels:
    def test_openai_models_get_rows_with_known_prices_once(self, fake_openai):
        p = KINDS["openai"].provider(fake_openai)
        assert "2 created" in sync(p)
        assert fake_openai.last().path == "/v1/models"
        assert fake_openai.last().headers["authorization"] == "Bearer sk-upstream-secret"
        assert prices(p) == {"gpt-4o": (2.5, 10.0, 1.25, None, 128000),
                             "gpt-4o-mini": (0.15, 0.6, 0.075, None, 128000)}
        assert "0 created, 0 updated, 2 unchanged" in sync(p)
        assert ProviderModel.objects.filter(provider=p).count() == 2

    def test_a_price_set_in_the_admin_is_kept(self, fake_openai):
        p = KINDS["openai"].provider(fake_openai)
        world.price(p, "gpt-4o", input_price=2, output_price=8)
        ProviderModel.objects.create(provider=p, model_id="gpt-4o-mini")  # no price yet: gets one
        assert "0 created, 2 updated, 0 unchanged" in sync(p)
        assert prices(p)["gpt-4o"] == (2.0, 8.0, None, None, 128000)  # only the missing context window
        assert prices(p)["gpt-4o-mini"] == (0.15, 0.6, 0.075, None, 128000)

    def test_anthropic_models_are_listed_with_the_api_key_and_version(self, fake_anthropic):
        p = KINDS["anthropic"].provider(fake_anthropic)
        sync(p)
        sent = fake_anthropic.last()
        assert sent.path == "/v1/models" and sent.headers["x-api-key"] == "sk-upstream-secret"
        assert sent.headers["anthropic-version"] == "2023-06-01"
        assert prices(p) == {"claude-opus-4-5-20251101": (5.0, 25.0, 0.5, 6.25, 200000),
                             "claude-sonnet-4-5-20250929": (3.0, 15.0, 0.3, 3.75, 200000),
                             "claude-haiku-4-5-20251001": (1.0, 5.0, 0.1, 1.25, 200000)}

    def test_ollama_models_come_from_the_tags_and_cost_nothing(self, fake_ollama):
        p = KINDS["ollama"].provider(fake_ollama)
        assert "3 created" in sync(p)
        assert fake_ollama.last().path == "/api/tags"
        assert prices(p) == {name: (0.0, 0.0, 0.0, 0.0, None)
                             for name in ("qwen2.5-coder:14b", "qwen3-coder:30b", "llama3.2:latest")}

    def test_openrouter_models_carry_openrouters_own_prices(self, fake_openrouter):
        p = KINDS["openrouter"].provider(fake_openrouter)
        sync(p)
        assert fake_openrouter.last().path == "/api/v1/models"
        found = prices(p)
        assert found["openai/gpt-4o"] == (2.5, 10.0, 1.25, None, 128000)
        assert found["anthropic/claude-sonnet-4.5"] == (3.0, 15.0, 0.3, 3.75, 1000000)
        assert found["openrouter/auto"][:2] == (0.0, 0.0)  # priced per request: unknown here

    def test_azure_says_why_it_cannot_list_deployments(self, fake_azure):
        p = KINDS["azure"].provider(fake_azure)
        with pytest.raises(CommandError, match="cannot be listed with an API key"):
            sync(p)

    def test_bedrock_without_credentials_says_so(self, fake_bedrock, monkeypatch):
        p = KINDS["bedrock"].provider(fake_bedrock, aws_access_key_id="", aws_secret_access_key="")
        monkeypatch.setattr("providers.discovery._bedrock_client", lambda provider: None)
        with pytest.raises(CommandError, match="no AWS credentials"):
            sync(p)

    def test_bedrock_lists_foundation_models_and_inference_profiles(self, fake_bedrock, monkeypatch):
        import botocore.session
        from botocore.stub import Stubber

        p = KINDS["bedrock"].provider(fake_bedrock)
        session = botocore.session.Session()
        session.set_credentials(p.aws_access_key_id, p.aws_secret_access_key)
        client = session.create_client("bedrock", region_name="us-east-1")
        stub = Stubber(client)
        stub.add_response("list_foundation_models", {"modelSummaries": [
            {"modelArn": "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
             "modelId": "anthropic.claude-3-haiku-20240307-v1:0", "inferenceTypesSupported": ["ON_DEMAND"]},
            {"modelArn": "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
             "modelId": "anthropic.claude-sonnet-4-5-20250929-v1:0",
             "inferenceTypesSupported": ["INFERENCE_PROFILE"]}]}, {"byOutputModality": "TEXT"})
        profile = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
        stub.add_response("list_inference_profiles", {"inferenceProfileSummaries": [
            {"inferenceProfileName": "US Claude Sonnet 4.5", "inferenceProfileId": profile, "status": "ACTIVE",
             "type": "SYSTEM_DEFINED",
             "inferenceProfileArn": f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{profile}",
             "models": [{"modelArn": "arn:aws:bedrock:us-east-1::foundation-model/" + profile[3:]}],
             "createdAt": "2025-09-29T00:00:00Z", "updatedAt": "2025-09-29T00:00:00Z"}]}, {})
        stub.activate()
        monkeypatch.setattr("providers.discovery._bedrock_client", lambda provider: client)
        assert "2 created" in sync(p)
        # Bedrock's own prices from the price database: no prompt caching for Claude 3 Haiku
        # there, and geographic (us.) profiles of Claude 4.5 models cost 10 % over Anthropic's.
        assert prices(p) == {"anthropic.claude-3-haiku-20240307-v1:0": (0.25, 1.25, None, None, 200000),
                             "us.anthropic.claude-sonnet-4-5-20250929-v1:0": (3.3, 16.5, 0.33, 4.125, 200000)}

    def test_an_unknown_provider_name_is_a_clear_error(self):
        with pytest.raises(CommandError, match="No provider named"):
            call_command("sync_models", "no-such-provider")

    def test_the_admin_action_syncs_the_selected_providers(self, fake_ollama, fake_azure):
        from django.contrib.auth import get_user_model
        from django.test import Client

        ollama = KINDS["ollama"].provider(fake_ollama)
        azure = KINDS["azure"].provider(fake_azure)
        admin_user = get_user_model().objects.create_superuser(world.unique("root"), "root@example.com", "pw")
        client = Client()
        client.force_login(admin_user)
        r = client.post("/admin/providers/provider/", {"action": "sync_models",
                                                       "_selected_action": [ollama.pk, azure.pk]}, follow=True)
        assert r.status_code == 200
        page = r.content.decode().lower()  # the admin capitalises messages
        assert f"{ollama.name}: 3 created, 0 updated, 0 unchanged." in page
        assert f"{azure.name}: azure openai deployments cannot be listed with an api key" in page
        assert ProviderModel.objects.filter(provider=ollama).count() == 3


# =========================================================================== per-provider settings


class TestProviderSettings:
    def test_a_short_first_token_timeout_is_a_504_or_a_fallback(self, gateway, alice, fake_openai, backup):
        slow = world.provider(fake_openai.url + "/v1", first_token_timeout=0.3)
        r = chat(gateway, alice, {"model": f"{slow.name}/mock:first_delay=1", "messages": CHAT})
        assert r.status_code == 504 and "timed out" in r.json()["error"]["message"]
        name = world.unique("slow")
        world.route(name, [(slow, "mock:first_delay=1"), (backup, "mock")])
        r = chat(gateway, alice, {"model": name, "messages": CHAT, "stream": True})
        assert r.status_code == 200 and r.headers["x-gateway-provider"] == backup.name

    def test_a_total_timeout_ends_a_long_stream_with_an_error_event(self, gateway, alice, fake_openai):
        p = world.provider(fake_openai.url + "/v1", total_timeout=0.5)
        r = chat(gateway, alice, {"model": f"{p.name}/mock:tokens=40,token_delay=0.05", "messages": CHAT,
                                  "stream": True})
        assert r.status_code == 200
        last = json.loads([e for e in sse_data(r.text) if e != "[DONE]"][-1])
        assert "total timeout" in last["error"]["message"]

    @pytest.mark.parametrize("type_", ["openai", "anthropic", "ollama", "azure", "bedrock"])
    def test_extra_headers_reach_the_upstream(self, gateway, alice, type_, request):
        kind = KINDS[type_]
        fake = request.getfixturevalue(kind.fake)
        p = kind.provider(fake, extra_headers={"X-Team": "blue", "X-Trace": "junction-1"})
        r = chat(gateway, alice, {"model": p.name, "messages": CHAT})
        assert r.status_code == 200, r.text  # Bedrock: the extra headers are signed along
        assert fake.last().headers["x-team"] == "blue" and fake.last().headers["x-trace"] == "junction-1"
