"""Stream shapes real upstreams send, through the real gateway to every client format:
`data:` without the space, events split at every byte across TCP writes, keep-alive
comment lines, CRLF, and (OpenAI chat upstreams) interleaved parallel tool-call fragments.
Each answer must equal the plain stream's answer, with usage recorded."""

from __future__ import annotations

import httpx
import pytest

from . import world
from .test_translation import CLIENTS, UPSTREAMS, call

SHAPES = ["nospace", "split=1", "keepalive", "crlf", "nospace,keepalive,split=3"]


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


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("client", CLIENTS)
def test_every_shape_reaches_every_client_unchanged(gateway, alice, upstreams, client, upstream, shape):
    provider = upstreams[upstream]
    plain = call(client, gateway, alice, f"{provider.name}/mock:parallel_tools", tools=True, stream=True)
    shaped = call(client, gateway, alice, f"{provider.name}/mock:parallel_tools,{shape}", tools=True,
                  stream=True)
    assert shaped[:3] == plain[:3]
    assert len(shaped[1]) == 2 and shaped[3][0] > 0 and shaped[3][1] > 0


@pytest.mark.parametrize("client", CLIENTS)
def test_interleaved_parallel_tool_calls_from_an_openai_upstream(gateway, alice, upstreams, client):
    provider = upstreams["openai_chat"]
    plain = call(client, gateway, alice, f"{provider.name}/mock:parallel_tools", tools=True, stream=True)
    text, calls, stop, usage = call(client, gateway, alice, f"{provider.name}/mock:parallel_tools,interleave",
                                    tools=True, stream=True)
    assert calls == plain[1] == [("tree", {"path": "src", "depth": 2}), ("read", {"path": "README.md"})]


@pytest.mark.parametrize("shape", ["nospace", "split=1", "keepalive,nospace"])
def test_openai_passthrough_reads_usage_and_hides_the_unasked_usage_chunk(gateway, alice, upstreams, shape):
    provider = upstreams["openai_chat"]
    r = httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {alice}"},
                   json={"model": f"{provider.name}/mock:{shape}", "stream": True,
                         "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert r.status_code == 200
    body = r.text.replace("\r\n", "\n")
    assert '"usage"' not in body and '"error"' not in body
    assert body.rstrip().endswith("[DONE]")
    rec = world.wait_record(r.headers["x-request-id"])
    assert rec.status == 200 and rec.prompt_tokens > 0 and rec.completion_tokens > 0
