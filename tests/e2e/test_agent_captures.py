"""Replay real agent requests (tests/fixtures/agents, copied from shared/agents) through
every front door to every upstream format, and hold what comes back to the rules
each client's parser needs (tests/fixtures/agents/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.fakes import bedrock as fake_bedrock_module

from . import world

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agents"
SKIP_HEADERS = {"host", "content-length", "authorization", "x-api-key", "accept-encoding", "connection",
                "transfer-encoding"}


def captured_requests():
    for path in sorted(CAPTURES.glob("*/*/*.json")):
        capture = json.loads(path.read_text())
        if capture.get("method") == "POST":
            yield pytest.param(capture, id=f"{path.parent.parent.name}/{path.parent.name}/{path.stem}")
    goose = CAPTURES / "goose"
    for body_file, headers_file, path in (("openai-chat.json", "headers-openai-chat.json", "/v1/chat/completions"),
                                          ("anthropic-messages.json", "headers-anthropic-messages.json",
                                           "/v1/messages"),
                                          ("ollama-chat.json", "headers-ollama-chat.json", "/v1/chat/completions")):
        headers = json.loads((goose / headers_file).read_text())["headers"]
        yield pytest.param({"method": "POST", "path": path, "query": "", "headers": headers,
                            "body": json.loads((goose / body_file).read_text())}, id=f"goose/{body_file}")


@pytest.fixture(scope="module")
def upstreams(fake_openai, fake_anthropic, fake_ollama, fake_bedrock):
    """upstream → (provider, its fake's model id and behaviour separator)."""
    return {
        "openai_chat": (world.provider(fake_openai.url + "/v1", wire_api="chat"), "mock", ":"),
        "anthropic": (world.provider(fake_anthropic.url, type="anthropic"), "mock", ":"),
        "openai_responses": (world.provider(fake_openai.url + "/v1", wire_api="responses"), "mock", ":"),
        "ollama": (world.provider(fake_ollama.url, type="ollama", api_key=""), "qwen2.5-coder:14b", "#"),
        "bedrock": (world.provider(fake_bedrock.url, type="bedrock", api_key="", region=fake_bedrock_module.REGION,
                                   aws_access_key_id=fake_bedrock_module.ACCESS_KEY,
                                   aws_secret_access_key=fake_bedrock_module.SECRET_KEY),
                    "anthropic.claude-sonnet-4-v1:0", "#"),
    }


@pytest.fixture(scope="module")
def key(upstreams):
    return world.alice_key()


def replay(gateway, key: str, capture: dict, model: str) -> httpx.Response:
    headers = {k: v for k, v in capture["headers"].items() if k.lower() not in SKIP_HEADERS}
    lower = {k.lower() for k in capture["headers"]}
    url = gateway.url + capture["path"] + ("?" + capture["query"] if capture.get("query") else "")
    if "x-api-key" in lower:
        headers["x-api-key"] = key
    elif "authorization" in lower:
        headers["authorization"] = f"Bearer {key}"
    else:  # Goose's Ollama provider never sends a key: it rides in the path
        url = f"{gateway.url}/k/{key}{capture['path']}"
    body = dict(capture["body"], model=model)
    return httpx.post(url, content=json.dumps(body), headers={**headers, "content-type": "application/json"},
                      timeout=60)


def check_openai_chat(text: str, body: dict) -> dict:
    events = [e[6:] for e in text.split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "[DONE]", "stream must end with [DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    finish_at = None
    usage_chunks = []
    first_fragment: dict[int, dict] = {}
    for i, chunk in enumerate(chunks):
        assert "error" not in chunk, chunk
        assert isinstance(chunk.get("choices"), list), "every chunk needs a choices array"
        if chunk.get("usage"):
            assert chunk["choices"] == [] and chunk.get("model"), "usage chunk: choices [] and a model"
            usage_chunks.append(chunk)
        for choice in chunk["choices"]:
            if choice.get("finish_reason"):
                finish_at = i
            for tc in (choice.get("delta") or {}).get("tool_calls") or []:
                assert "index" in tc
                if tc["index"] not in first_fragment:
                    first_fragment[tc["index"]] = tc
                    assert tc.get("id") and tc["function"].get("name"), "first fragment: index, id and name"
                assert tc.get("function", {}).get("arguments") is not None, "arguments must not be null"
    assert finish_at is not None, "finish_reason before [DONE]"
    wants_usage = (body.get("stream_options") or {}).get("include_usage")
    assert len(usage_chunks) == (1 if wants_usage else 0)
    if usage_chunks:
        assert finish_at < chunks.index(usage_chunks[0])
    return {"tools": len(first_fragment)}


def sse(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.split("\n\n"):
        name, data = None, None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if data is not None:
            out.append((name, data))
    return out


def check_anthropic(text: str, body: dict) -> dict:
    events = sse(text)
    names = [n for n, _ in events if n != "ping"]
    assert names[0] == "message_start" and names[-1] == "message_stop" and "error" not in names
    delta = [d for n, d in events if n == "message_delta"]
    assert len(delta) == 1 and delta[0]["delta"]["stop_reason"] and "output_tokens" in delta[0]["usage"]
    starts = [d for n, d in events if n == "content_block_start"]
    stops = [d for n, d in events if n == "content_block_stop"]
    assert sorted(s["index"] for s in starts) == sorted(s["index"] for s in stops)
    return {"tools": sum(1 for s in starts if s["content_block"]["type"] == "tool_use")}


def check_responses(text: str, body: dict) -> dict:
    events = sse(text)
    assert events[0][0] == "response.created" and events[-1][0] == "response.completed"
    seq = [d["sequence_number"] for _, d in events]
    assert seq == sorted(seq) and len(set(seq)) == len(seq)
    final = events[-1][1]["response"]
    assert final["usage"]["input_tokens"] > 0
    return {"tools": sum(1 for i in final["output"] if i["type"] == "function_call")}


CHECKS = {"/v1/chat/completions": check_openai_chat, "/v1/messages": check_anthropic,
          "/v1/responses": check_responses}


@pytest.mark.parametrize("upstream", ["openai_chat", "anthropic", "openai_responses", "ollama", "bedrock"])
@pytest.mark.parametrize("capture", list(captured_requests()))
def test_a_real_agent_request_works_through_every_upstream(gateway, key, upstreams, capture, upstream):
    provider, model, sep = upstreams[upstream]
    has_tools = bool(capture["body"].get("tools"))
    tools = [t for t in capture["body"].get("tools") or [] if t.get("type", "function") in ("function", "custom")
             or "input_schema" in t or "name" in t]
    behaviour = "mock:tools" if has_tools and tools else "mock"
    r = replay(gateway, key, capture, f"{provider.name}/{model}{sep + 'tools' if has_tools and tools else ''}")
    assert r.status_code == 200, r.text[:500]
    hosted = any(t.get("type") not in (None, "function", "namespace") for t in capture["body"].get("tools") or [])
    if capture["path"] == "/v1/responses" and hosted:
        # Codex's hosted web_search: passed through to a Responses upstream, mapped to Anthropic's
        # server tool, and left out (and said so) where the target has no web search.
        dropped = upstream in ("openai_chat", "ollama", "bedrock")
        assert r.headers.get("x-gateway-dropped-tools") == ("web_search" if dropped else None)
    seen = CHECKS[capture["path"]](r.text, capture["body"])
    if behaviour == "mock:tools":
        assert seen["tools"] == 1
    record = world.wait_record(r.headers["x-request-id"])
    assert record.status == 200 and record.prompt_tokens > 0 and record.completion_tokens > 0


def test_claude_codes_probe_and_beta_query_are_served(gateway, key, upstreams, fake_anthropic):
    assert httpx.head(gateway.url + "/").status_code == 200
    capture = json.loads((CAPTURES / "claude-code/01-authtoken-mockmodel/002-v1_messages.json").read_text())
    assert capture["query"] == "beta=true"
    r = replay(gateway, key, capture, f"{upstreams['anthropic'][0].name}/mock")
    assert r.status_code == 200
    assert fake_anthropic.last().query == "beta=true"
