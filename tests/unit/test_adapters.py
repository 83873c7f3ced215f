"""Provider adapters without a server: the request each builds, how it sends it on
the gateway's upstream client (a stub here), and how upstream errors decode."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from providers.adapters import get_adapter
from providers.adapters.base import UpstreamRequest
from providers.codecs import get_codec
from providers.codecs.errors import GatewayError
from providers.config import ModelInfo, ProviderInfo
from providers.upstream_client import UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout

BODY = {"model": "alias", "messages": [{"role": "user", "content": "hi"}]}


def provider(type_: str, base_url: str, **fields) -> ProviderInfo:
    return ProviderInfo(name=f"p-{type_}", type=type_, base_url=base_url, **fields)


def build(type_: str, info: ProviderInfo, *, fmt: str = "openai_chat", stream: bool = False,
          endpoint: str = "generate", body: dict | None = None, client_headers=None) -> UpstreamRequest:
    return get_adapter(type_).build(info, "m1", dict(body or BODY), endpoint, fmt, stream, orjson.dumps,
                                    client_headers)


class StubResponse:
    def __init__(self, status: int, body: bytes = b"", headers: dict | None = None,
                 error: Exception | None = None) -> None:
        self.status, self.headers, self._body, self._error = status, headers or {}, body, error
        self.closed = False
        self.resends = 0  # times the client re-sent on a fresh connection (providers.upstream_client)

    async def read(self) -> bytes:
        if self._error:
            raise self._error
        return self._body

    async def chunks(self):
        yield self._body[:3]
        if self._error:
            raise self._error
        yield self._body[3:]

    def close(self) -> None:
        self.closed = True


class StubClient:
    """Stands in for providers.upstream_client.Client: records calls, answers or raises."""

    def __init__(self, answer=None, raises: Exception | None = None) -> None:
        self.answer, self.raises, self.calls = answer, raises, []

    async def request(self, method, url, headers, body, *, connect_timeout, read_timeout, proxy="",
                      ca_bundle=""):
        self.calls.append({"method": method, "url": url, "headers": headers, "body": body,
                           "connect_timeout": connect_timeout, "read_timeout": read_timeout,
                           "proxy": proxy, "ca_bundle": ca_bundle})
        if self.raises:
            raise self.raises
        return self.answer


def run(coro):
    return asyncio.run(coro)


# ---------------------------------------------------------------------------------- building requests

def test_openai_builds_chat_completions_with_bearer_key_model_and_stream_usage():
    info = provider("openai", "https://api.example/v1", api_key="sk-1", extra_headers=(("x-org", "o"),))
    request = build("openai", info, stream=True, body={**BODY, "stream": True})
    assert request.method == "POST" and request.url == "https://api.example/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-1" and request.headers["x-org"] == "o"
    assert request.headers["accept-encoding"] == "identity"
    sent = orjson.loads(request.content)
    assert sent["model"] == "m1" and sent["stream_options"] == {"include_usage": True}


def test_openai_without_a_key_sends_no_authorization_and_speaks_responses_natively():
    info = provider("openai", "http://local/v1")
    request = build("openai", info, fmt="openai_responses", body={"model": "x", "input": "hi"})
    assert request.url == "http://local/v1/responses" and "authorization" not in request.headers
    adapter = get_adapter("openai")
    assert adapter.wire_format_for("openai_responses", info) == "openai_responses"
    assert adapter.wire_format_for("anthropic_messages", info) == "openai_chat"
    chat_only = provider("openai", "x", wire_api="chat")
    assert adapter.wire_format_for("openai_responses", chat_only) == "openai_chat"


def test_anthropic_builds_messages_with_x_api_key_and_passes_client_version_headers():
    info = provider("anthropic", "https://anthropic.example", api_key="ak")
    request = build("anthropic", info, fmt="anthropic_messages",
                    client_headers=[(b"anthropic-beta", b"tools-1"), (b"cookie", b"no")])
    assert request.url == "https://anthropic.example/v1/messages"
    assert request.headers["x-api-key"] == "ak" and request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["anthropic-beta"] == "tools-1" and "cookie" not in request.headers
    count = build("anthropic", info, fmt="anthropic_messages", endpoint="count_tokens")
    assert count.url.endswith("/v1/messages/count_tokens")


def test_azure_uses_the_deployment_path_and_api_key_header():
    info = provider("azure", "https://res.openai.azure.com", api_key="az", api_version="2024-10-21",
                    models={"m1": ModelInfo("m1", deployment="dep one")})
    request = build("azure", info)
    assert request.url == ("https://res.openai.azure.com/openai/deployments/dep%20one/chat/completions"
                           "?api-version=2024-10-21")
    assert request.headers["api-key"] == "az" and "authorization" not in request.headers
    v1 = build("azure", provider("azure", "https://res.openai.azure.com/openai/v1", api_key="eyJtoken"))
    assert v1.url == "https://res.openai.azure.com/openai/v1/chat/completions"
    assert v1.headers["authorization"] == "Bearer eyJtoken"


def test_openrouter_asks_for_usage_and_adds_attribution_unless_configured():
    info = provider("openrouter", "https://or.example/api/v1", api_key="k",
                    extra_headers=(("x-title", "Mine"),))
    request = build("openrouter", info)
    assert orjson.loads(request.content)["usage"] == {"include": True}
    assert request.headers["HTTP-Referer"] == "http://localhost"
    assert request.headers["x-title"] == "Mine" and "X-Title" not in request.headers


def test_ollama_builds_native_chat():
    request = build("ollama", provider("ollama", "http://ollama.local:11434"), fmt="ollama")
    assert request.url == "http://ollama.local:11434/api/chat"
    assert orjson.loads(request.content)["model"] == "m1"


def test_bedrock_puts_the_model_in_the_url_and_signs_on_send():
    info = provider("bedrock", "", region="eu-west-1", aws_access_key_id="AKIDEXAMPLE",
                    aws_secret_access_key="secret")
    request = build("bedrock", info, fmt="bedrock_converse", stream=True, body={"messages": []})
    assert request.url.startswith("https://bedrock-runtime.eu-west-1.amazonaws.com/model/m1/converse")
    assert request.encoded_url and request.headers["accept"] == "application/vnd.amazon.eventstream"
    client = StubClient(StubResponse(200, b"{}"))
    run(get_adapter("bedrock").send(client, request, info))
    sent = client.calls[0]["headers"]
    assert sent["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/bedrock/aws4_request" in sent["Authorization"]


# ---------------------------------------------------------------------------------- sending

def test_send_uses_the_given_client_and_the_provider_timeouts():
    info = provider("openai", "http://u/v1", connect_timeout=2.5, first_token_timeout=7.0)
    client = StubClient(StubResponse(200, b'{"ok": true}', {"content-type": "application/json"}))
    response = run(get_adapter("openai").send(client, build("openai", info), info))
    call = client.calls[0]
    assert call["url"] == "http://u/v1/chat/completions" and call["method"] == "POST"
    assert call["connect_timeout"] == 2.5 and call["read_timeout"] == 7.0
    assert response.status == 200 and run(response.read()) == b'{"ok": true}'
    response.close()
    assert client.answer.closed


@pytest.mark.parametrize("raised, status, kind", [
    (UpstreamTimeout("connect"), 504, "timeout"),
    (UpstreamConnectError("refused"), 502, "bad_gateway"),
    (UpstreamProtocolError("garbage"), 502, "bad_gateway"),
])
def test_transport_failures_become_retryable_gateway_errors(raised, status, kind):
    info = provider("openai", "http://u/v1")
    with pytest.raises(GatewayError) as caught:
        run(get_adapter("openai").send(StubClient(raises=raised), build("openai", info), info))
    assert caught.value.status == status and caught.value.type == kind and caught.value.retryable
    assert info.name in caught.value.message


def test_a_stream_that_stalls_midway_becomes_a_retryable_timeout():
    info = provider("openai", "http://u/v1")
    client = StubClient(StubResponse(200, b"data: x\n\n", error=UpstreamTimeout("read")))
    response = run(get_adapter("openai").send(client, build("openai", info), info))

    async def drain():
        return [chunk async for chunk in response.chunks()]

    with pytest.raises(GatewayError) as caught:
        run(drain())
    assert caught.value.status == 504 and "stalled" in caught.value.message


# ---------------------------------------------------------------------------------- decoding errors

def test_openai_error_bodies_decode_with_status_and_retryability():
    adapter, codec = get_adapter("openai"), get_codec("openai_chat")
    limited = adapter.decode_error(codec, 429, b'{"error": {"message": "slow down", "type": "requests"}}', {})
    assert limited.status == 429 and limited.retryable and "slow down" in limited.message
    raw = b'{"error": {"message": "bad field", "type": "invalid_request_error"}}'
    bad = adapter.decode_error(codec, 400, raw, {})
    assert bad.status == 400 and not bad.retryable


def test_anthropic_overloaded_is_retryable():
    error = get_adapter("anthropic").decode_error(
        get_codec("anthropic_messages"), 529,
        b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}', {})
    assert error.retryable and "Overloaded" in error.message


def test_azure_content_filter_is_a_400_naming_the_categories():
    raw = orjson.dumps({"error": {"code": "content_filter", "message": "filtered", "innererror": {
        "code": "ResponsibleAIPolicyViolation",
        "content_filter_result": {"violence": {"filtered": True, "severity": "medium"},
                                  "hate": {"filtered": False, "severity": "safe"}}}}})
    error = get_adapter("azure").decode_error(get_codec("openai_chat"), 400, raw, {})
    assert error.status == 400 and error.code == "content_filter" and "violence (medium)" in error.message


def test_bedrock_reads_the_error_type_from_its_header():
    error = get_adapter("bedrock").decode_error(
        get_codec("bedrock_converse"), 400, b'{"message": "Too many tokens"}',
        {"x-amzn-errortype": "ThrottlingException:http://internal.amazon.com/coral/"})
    assert error.retryable and "Too many tokens" in error.message
