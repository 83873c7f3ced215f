"""Anthropic Messages codec: real captures, streams at every byte boundary, usage
conversion, errors, and the fake upstream checked with the official SDK."""

from __future__ import annotations

import copy
import glob
import json
import os
import time
from pathlib import Path

import anthropic
import httpx
import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event

from providers.codecs.anthropic_messages import CODEC, EFFORT_BUDGETS
from providers.codecs.canonical import (
    BlockDelta,
    BlockStart,
    BlockStop,
    ImageBlock,
    Message,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    Reasoning,
    RedactedThinkingBlock,
    Request,
    Response,
    ServerToolBlock,
    StreamError,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)
from providers.codecs.errors import GatewayError, InvalidRequest, UnsupportedFeature
from tests.fakes.anthropic import SIGNATURE, FakeAnthropic, input_tokens_of

AGENTS = str(Path(__file__).resolve().parents[1] / "fixtures" / "agents")  # inside the repo
CAPTURES = sorted(glob.glob(f"{AGENTS}/*/*/*-v1_messages.json"))
GOOSE = f"{AGENTS}/goose/anthropic-messages.json"
ALL_BODIES = CAPTURES + [GOOSE]

assert CAPTURES, f"agent captures missing under {AGENTS}"


def load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def body_of(path: str) -> dict:
    d = load(path)
    return d["body"] if "body" in d else d


def short(path: str) -> str:
    return os.path.relpath(path, AGENTS)


def complete_prefix(sse: bytes) -> bytes:
    """body_head may be cut: keep up to the last complete event."""
    end = sse.rfind(b"\n\n")
    return sse[: end + 2] if end >= 0 else b""


def decode_all(data: bytes, chunks: list[int] | None = None, close: bool = True) -> list:
    dec = CODEC.stream_decoder()
    events = []
    if chunks is None:
        events += dec.feed(data)
    else:
        pos = 0
        for c in chunks:
            events += dec.feed(data[pos:c])
            pos = c
        events += dec.feed(data[pos:])
    if close:
        events += dec.close()
    return events


def sse_events(data: bytes) -> list[tuple[str, dict]]:
    out = []
    for part in data.split(b"\n\n"):
        if not part:
            continue
        lines = part.split(b"\n")
        assert lines[0].startswith(b"event: ") and lines[1].startswith(b"data: "), part
        out.append((lines[0][7:].decode(), orjson.loads(lines[1][6:])))
    return out


def sdk_accumulate(data: bytes):
    """Feed our SSE through the official SDK's accumulator (what MessageStream does)."""
    snapshot = None
    for name, obj in sse_events(data):
        if name == "error":
            raise AssertionError(obj)
        snapshot = accumulate_event(event=obj, current_snapshot=snapshot)
    return snapshot


# =========================================================================== request: captures


def expected_messages(body: dict) -> tuple[list, list]:
    """What a lossless decode->encode must give: role-system entries moved to the end of
    `system`, string content as one text block, consecutive same-role turns merged."""
    system = body.get("system")
    system = [{"type": "text", "text": system}] if isinstance(system, str) else list(system or [])
    messages: list[dict] = []
    for m in body["messages"]:
        content = m["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else copy.deepcopy(content)
        if m["role"] == "system":
            system.extend(blocks)
            continue
        if messages and messages[-1]["role"] == m["role"]:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": m["role"], "content": blocks})
    return system, messages


def normalise_tool_results(messages: list) -> list:
    for m in messages:
        for b in m["content"]:
            if b.get("type") == "tool_result" and b.get("is_error") is False:
                del b["is_error"]  # false is the default; the encoder leaves it out
    return messages


def cache_markers(obj) -> list[str]:
    """Paths of every cache_control in a body, e.g. 'messages.3.content.1'."""
    found = []

    def walk(x, path):
        if isinstance(x, dict):
            if "cache_control" in x:
                found.append((path, json.dumps(x["cache_control"])))
            for k, v in x.items():
                walk(v, f"{path}.{k}" if path else k)
        elif isinstance(x, list):
            for i, v in enumerate(x):
                walk(v, f"{path}.{i}")

    walk(obj, "")
    return found


@pytest.mark.parametrize("path", ALL_BODIES, ids=short)
def test_capture_decode_reencode_is_lossless(path):
    body = body_of(path)
    req = CODEC.decode_request(body)
    assert req.source_format == "anthropic_messages"
    assert req.model == body["model"] and req.max_tokens == body["max_tokens"]
    out = CODEC.encode_request(req)

    system, messages = expected_messages(body)
    assert out["system"] == system
    assert normalise_tool_results(out["messages"]) == normalise_tool_results(messages)
    assert out.get("tools") == body.get("tools")  # eager_input_streaming, cache_control, schemas untouched
    for key in set(body) - {"system", "messages", "tools"}:
        assert out.get(key) == body[key], key
    assert set(out) == set(body)
    # cache_control count is preserved exactly (role-system entries never carry one here)
    assert len(cache_markers(out)) == len(cache_markers(body))
    # tool ids byte-for-byte, in order
    ids_in = [b["id"] for m in body["messages"] if isinstance(m["content"], list)
              for b in m["content"] if b.get("type") == "tool_use"]
    ids_out = [b["id"] for m in out["messages"] for b in m["content"] if b["type"] == "tool_use"]
    assert ids_in == ids_out
    # and the encoded body is valid JSON orjson can serialise (hot path)
    assert orjson.loads(orjson.dumps(out)) == out


def test_claude_code_role_system_entry_goes_to_system():
    body = body_of(f"{AGENTS}/claude-code/01-authtoken-mockmodel/003-v1_messages.json")
    sys_entry = next(m for m in body["messages"] if m["role"] == "system")
    req = CODEC.decode_request(body)
    assert [m.role for m in req.messages] == ["user", "assistant", "user"]
    assert len(req.system) == len(body["system"]) + 1
    assert req.system[-1].text == sys_entry["content"]
    # cache markers on the original system blocks stay where they were
    assert [b.cache_control for b in req.system[:3]] == [s.get("cache_control") for s in body["system"]]


def test_claude_code_thinking_and_output_config():
    adaptive = body_of(f"{AGENTS}/claude-code/03-apikey-defaultmodel-bash/003-v1_messages.json")
    req = CODEC.decode_request(adaptive)
    assert req.reasoning == Reasoning(effort="high")
    assert req.extra["context_management"] == adaptive["context_management"]
    out = CODEC.encode_request(req)
    assert out["thinking"] == {"type": "adaptive"} and out["output_config"] == {"effort": "high"}

    budget = body_of(f"{AGENTS}/claude-code/02-apikey-sonnet45-nonessential-on/003-v1_messages.json")
    req = CODEC.decode_request(budget)
    assert req.reasoning.budget_tokens == 31999
    out = CODEC.encode_request(req)
    assert out["thinking"] == budget["thinking"]
    assert out["max_tokens"] == 32000

    title = body_of(f"{AGENTS}/claude-code/03-apikey-defaultmodel-bash/002-v1_messages.json")
    req = CODEC.decode_request(title)
    assert req.reasoning is None and req.tools == []
    assert req.response_format["type"] == "json_schema"
    assert req.response_format["json_schema"]["schema"] == title["output_config"]["format"]["schema"]
    out = CODEC.encode_request(req)
    assert out["tools"] == [] and out["thinking"] == {"type": "disabled"}
    assert out["output_config"] == title["output_config"]
    assert list(out["output_config"]) == list(title["output_config"])  # key order too


def test_opencode_tool_extras_and_goose_cache_control():
    oc = body_of(f"{AGENTS}/opencode/02-anthropic-provider-sonnet45/002-v1_messages.json")
    req = CODEC.decode_request(oc)
    assert all(t.extra == {"eager_input_streaming": True} for t in req.tools)
    assert req.tool_choice == ToolChoice("auto")
    # translated for another format's client, extras that only Anthropic knows are not sent
    foreign = copy.copy(req)
    foreign.source_format = "openai_chat"
    assert all("eager_input_streaming" not in t for t in CODEC.encode_request(foreign)["tools"])

    goose = body_of(GOOSE)
    req = CODEC.decode_request(goose)
    assert req.tools[-1].cache_control == {"type": "ephemeral"}
    assert req.system[0].cache_control == {"type": "ephemeral"}
    tr = req.messages[2].content[0]
    assert isinstance(tr, ToolResultBlock) and tr.cache_control == {"type": "ephemeral"}
    assert tr.tool_use_id == req.messages[1].content[1].id == "toolu_01LqV7mZs3Yq9cB2eR8tN4aW"


def with_thinking_history() -> dict:
    body = body_of(GOOSE)
    body = copy.deepcopy(body)
    assistant = body["messages"][1]
    assistant["content"][:0] = [
        {"type": "thinking", "thinking": "Look at the tree first.", "signature": "EqQBCkYIBxgCKkB+sig/=="},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"},
        {"type": "thinking", "thinking": "unsigned, from another provider"},
    ]
    return body


def test_thinking_signatures_survive_and_unsigned_thinking_is_dropped():
    body = with_thinking_history()
    req = CODEC.decode_request(body)
    blocks = req.messages[1].content
    assert blocks[0] == ThinkingBlock("Look at the tree first.", "EqQBCkYIBxgCKkB+sig/==")
    out = CODEC.encode_request(req)
    content = out["messages"][1]["content"]
    assert content[0] == {"type": "thinking", "thinking": "Look at the tree first.",
                          "signature": "EqQBCkYIBxgCKkB+sig/=="}
    assert content[1] == {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"}
    assert [b["type"] for b in content] == ["thinking", "redacted_thinking", "text", "tool_use"]


def test_image_and_tool_result_blocks():
    body = {"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "what is it?"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "look", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
                                      "content": [{"type": "text", "text": "boom"},
                                                  {"type": "image", "source": {"type": "base64",
                                                                               "media_type": "image/jpeg",
                                                                               "data": "/9j/"}}]}]},
    ]}
    req = CODEC.decode_request(body)
    assert req.messages[0].content[0] == ImageBlock(media_type="image/png", data="iVBOR")
    assert req.messages[0].content[1].url == "https://x/y.png"
    tr = req.messages[2].content[0]
    assert tr.is_error and len(tr.content) == 2
    assert CODEC.encode_request(req)["messages"] == body["messages"]


# =========================================================================== request: validation


def base_body(**over) -> dict:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    body.update(over)
    return body


@pytest.mark.parametrize("body, needle", [
    ([], "JSON object"),
    (base_body(model=""), "model"),
    (base_body(model=None), "model"),
    (base_body(messages=[]), "messages"),
    (base_body(messages="hi"), "messages"),
    (base_body(max_tokens=None), "max_tokens"),
    (base_body(max_tokens=0), "max_tokens"),
    (base_body(messages=[{"role": "tool", "content": "x"}]), "role"),
    (base_body(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}]), "'document'"),
    (base_body(messages=[{"role": "user", "content": [{"type": "web_search_tool_result"}]}]),
     "'web_search_tool_result'"),
    (base_body(messages=[{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_nope", "content": "x"}]}]), "without a matching tool_use"),
    (base_body(tool_choice={"type": "sometimes"}), "tool_choice"),
    (base_body(tool_choice={"type": "tool"}), "tool_choice.name"),
    (base_body(tools=[{"description": "no name"}]), "tools.0.name"),
    (base_body(thinking={"type": "maybe"}), "thinking.type"),
    (base_body(temperature="hot"), "temperature"),
    (base_body(stop_sequences="END"), "stop_sequences"),
    (base_body(system=[{"type": "image"}]), "system"),
])
def test_invalid_requests_are_400(body, needle):
    with pytest.raises(InvalidRequest) as err:
        CODEC.decode_request(body)
    assert err.value.status == 400
    assert needle in err.value.message


def test_count_tokens_bodies_have_no_max_tokens():
    req = CODEC.decode_request(base_body(max_tokens=None), require_max_tokens=False)
    assert req.max_tokens is None


def test_unknown_fields_go_to_extra_and_back():
    body = base_body(top_k=5, service_tier="auto", container="c1", mcp_servers=[{"name": "x"}],
                     context_management={"edits": []}, metadata={"user_id": "u"}, stop_sequences=["END"],
                     temperature=0.2, top_p=0.9, stream=True)
    req = CODEC.decode_request(body)
    assert req.extra == {"top_k": 5, "service_tier": "auto", "container": "c1", "mcp_servers": [{"name": "x"}],
                         "context_management": {"edits": []}}
    assert req.stop == ["END"] and req.temperature == 0.2 and req.stream and req.metadata == {"user_id": "u"}
    out = CODEC.encode_request(req)
    assert out == {**body, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}


# =========================================================================== request: encoding for other clients


def foreign(**kw) -> Request:
    kw.setdefault("model", "claude-sonnet-4-5")
    kw.setdefault("messages", [Message("user", [TextBlock("hi")])])
    return Request(source_format="openai_chat", **kw)


def test_openai_only_features():
    with pytest.raises(UnsupportedFeature, match="n>1"):
        CODEC.encode_request(foreign(extra={"n": 2}))
    with pytest.raises(UnsupportedFeature, match="logprobs"):
        CODEC.encode_request(foreign(extra={"logprobs": True, "top_logprobs": 3}))
    out = CODEC.encode_request(foreign(extra={"n": 1, "seed": 7, "frequency_penalty": 0.5, "presence_penalty": 0.1,
                                              "logit_bias": {"1": 2}, "user": "alice"}))
    assert out == {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                   "max_tokens": 4096, "metadata": {"user_id": "alice"}}


def test_openai_shaped_history_is_made_valid_for_anthropic():
    req = foreign(
        system=[TextBlock("be brief"), TextBlock("")],
        messages=[
            Message("user", [TextBlock("list files")]),
            Message("assistant", [TextBlock(""), ToolUseBlock("functions.ls:0", "ls", {"p": "."}),
                                  ToolUseBlock("call_2", "cat", {"f": "a"})]),
            Message("user", [ToolResultBlock("functions.ls:0", [TextBlock("a b")])]),
            Message("user", [ToolResultBlock("call_2", [TextBlock("x")])]),
            Message("user", [TextBlock("thanks"), ImageBlock(url="data:image/jpeg;base64,/9j/AAA")]),
            Message("assistant", []),
            Message("assistant", [ThinkingBlock("no signature here"), TextBlock("done")]),
        ],
        tools=[Tool("ls", "list", {"type": "object", "properties": {"p": {"type": "string"}}}, extra={"strict": True})],
        tool_choice=ToolChoice("any", disable_parallel_tool_use=True),
        stop=["END"], temperature=0.3, stream=True,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        metadata={"purpose": "test"},
    )
    out = CODEC.encode_request(req)
    assert out["system"] == [{"type": "text", "text": "be brief"}]
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user", "assistant"]
    assert out["messages"][1]["content"] == [
        {"type": "tool_use", "id": "functions_ls_0", "name": "ls", "input": {"p": "."}},
        {"type": "tool_use", "id": "call_2", "name": "cat", "input": {"f": "a"}}]
    assert out["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "functions_ls_0", "content": "a b"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "x"},
        {"type": "text", "text": "thanks"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/AAA"}}]
    assert out["messages"][3]["content"] == [{"type": "text", "text": "done"}]
    assert out["tools"] == [{"name": "ls", "description": "list",
                             "input_schema": {"type": "object", "properties": {"p": {"type": "string"}}}}]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert out["stop_sequences"] == ["END"] and out["temperature"] == 0.3 and out["stream"] is True
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": {"type": "object"}}}
    assert "metadata" not in out  # Anthropic accepts only metadata.user_id


def test_tool_results_are_moved_before_text_in_a_user_turn():
    req = foreign(messages=[
        Message("assistant", [ToolUseBlock("t1", "a", {})]),
        Message("user", [TextBlock("note"), ToolResultBlock("t1", [TextBlock("r")])]),
    ])
    content = CODEC.encode_request(req)["messages"][1]["content"]
    assert [b["type"] for b in content] == ["tool_result", "text"]


def test_tools_empty_list_stays_and_none_is_omitted():
    assert CODEC.encode_request(foreign(tools=[]))["tools"] == []
    assert "tools" not in CODEC.encode_request(foreign())
    assert "tool_choice" not in CODEC.encode_request(foreign(tools=[], tool_choice=ToolChoice("auto")))


@pytest.mark.parametrize("reasoning, max_tokens, temperature, want_budget, want_max", [
    # explicit budgets: clamped just below the client's max_tokens, minimum 1024
    (Reasoning(budget_tokens=31999), 32000, None, 31999, 32000),
    (Reasoning(budget_tokens=50000), 32000, None, 31999, 32000),
    (Reasoning(budget_tokens=100), 8000, None, 1024, 8000),
    (Reasoning(budget_tokens=2000), None, None, 2000, 2000 + 4096),
        # max_tokens too small for any budget: raised so the answer keeps its 500
        (Reasoning(budget_tokens=2000), 500, None, 2000, 2500),
    # effort only: mapped budget, at most half of max_tokens
    (Reasoning(effort="low"), None, 0.5, EFFORT_BUDGETS["low"], EFFORT_BUDGETS["low"] + 4096),
    (Reasoning(effort="medium"), 64000, None, 8192, 64000),
    (Reasoning(effort="high"), 64000, 0.7, 24576, 64000),
    (Reasoning(effort="high"), 4096, None, 2048, 4096),
    (Reasoning(effort="high"), 1000, None, 1024, 2024),
])
def test_reasoning_to_thinking_budget(reasoning, max_tokens, temperature, want_budget, want_max):
    out = CODEC.encode_request(foreign(reasoning=reasoning, max_tokens=max_tokens, temperature=temperature))
    assert out["thinking"] == {"type": "enabled", "budget_tokens": want_budget}
    assert out["max_tokens"] == want_max
    assert 1024 <= out["thinking"]["budget_tokens"] < out["max_tokens"]
    assert "temperature" not in out  # Anthropic rejects temperature with thinking
    assert "output_config" not in out  # effort is not sent cross-format: the budget carries it


def test_reasoning_off():
    assert "thinking" not in CODEC.encode_request(foreign(reasoning=Reasoning(enabled=False), temperature=0.1))
    assert "thinking" not in CODEC.encode_request(foreign(reasoning=Reasoning(effort="none")))
    assert CODEC.encode_request(foreign(temperature=0.1))["temperature"] == 0.1
    assert CODEC.decode_request(base_body(thinking={"type": "disabled"})).reasoning is None


# =========================================================================== responses and usage


MESSAGE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig=="},
                {"type": "text", "text": "Let me look."},
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
                {"type": "tool_use", "id": "toolu_01A", "name": "ls", "input": {"path": "."}}],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 100, "cache_creation_input_tokens": 20, "cache_read_input_tokens": 30,
              "output_tokens": 5, "service_tier": "standard"},
}


def test_response_usage_conversion_both_ways():
    resp = CODEC.decode_response(MESSAGE)
    assert resp.usage == Usage(input_tokens=150, output_tokens=5, cache_read_tokens=30, cache_write_tokens=20)
    assert resp.stop_reason == "tool_use"
    # server tool blocks are carried (a Responses client sees them as web_search_call items)
    assert [b.type for b in resp.content] == ["thinking", "text", "server_tool", "tool_use"]
    req = Request(model="my-alias", messages=[])
    out = CODEC.encode_response(resp, req)
    assert out["model"] == "my-alias" and out["id"] == MESSAGE["id"]
    assert out["usage"] == {"input_tokens": 100, "cache_creation_input_tokens": 20, "cache_read_input_tokens": 30,
                            "output_tokens": 5}
    assert out["content"][0] == {"type": "thinking", "thinking": "hmm", "signature": "sig=="}
    # an OpenAI-style canonical usage (cached part of all-inclusive prompt tokens)
    openai_like = Response(id="chatcmpl-1", model="gpt", content=[TextBlock("x")], stop_reason="max_tokens",
                           usage=Usage(input_tokens=1000, output_tokens=7, cache_read_tokens=800))
    out = CODEC.encode_response(openai_like, req)
    assert out["id"].startswith("msg_") and out["stop_reason"] == "max_tokens"
    assert out["usage"] == {"input_tokens": 200, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 800,
                            "output_tokens": 7}
    assert CODEC.usage_from_response(MESSAGE).input_tokens == 150


# =========================================================================== stream decoding


def capture_streams() -> list[tuple[str, bytes]]:
    seen, out = set(), []
    for path in CAPTURES:
        head = load(path)["response"]["body_head"].encode()
        shape = head.replace(b"0", b"").replace(b"1", b"")[:400]  # skip near-duplicates for the slow tests
        out.append((short(path), head, shape not in seen))
        seen.add(shape)
    return out


STREAMS = capture_streams()


@pytest.mark.parametrize("name, head, _", STREAMS, ids=[s[0] for s in STREAMS])
def test_capture_stream_decodes(name, head, _):
    data = complete_prefix(head)
    events = decode_all(data)
    assert isinstance(events[0], MessageStart)
    first = sse_events(data)[0][1]["message"]
    u = first["usage"]
    assert events[0].usage.input_tokens == u["input_tokens"] + u["cache_creation_input_tokens"] + u["cache_read_input_tokens"]
    if data == head and head.rstrip().endswith(b'{"type":"message_stop"}'):
        assert isinstance(events[-1], MessageStop)
        delta = next(e for e in events if isinstance(e, MessageDelta))
        assert delta.usage.output_tokens == sse_events(data)[-2][1]["usage"]["output_tokens"]
        assert delta.usage.input_tokens == events[0].usage.input_tokens  # cumulative: start merged in
        # tool input rebuilt from the json fragments is the object the capture streamed
        starts = {e.index: e.block for e in events if isinstance(e, BlockStart)}
        for index, block in starts.items():
            if isinstance(block, ToolUseBlock):
                raw = "".join(e.value for e in events if isinstance(e, BlockDelta) and e.index == index)
                assert isinstance(json.loads(raw), dict)
    else:
        assert isinstance(events[-1], StreamError) and events[-1].type == "bad_gateway"


@pytest.mark.parametrize("name, head, _", [s for s in STREAMS if s[2]], ids=[s[0] for s in STREAMS if s[2]])
def test_capture_stream_any_byte_boundary(name, head, _):
    data = complete_prefix(head)
    whole = decode_all(data)
    for cut in range(1, len(data)):
        assert decode_all(data, [cut]) == whole, cut
    assert decode_all(data, list(range(1, len(data)))) == whole  # one byte at a time


def test_truncated_stream_is_an_error_never_silent():
    head = next(h for _, h, _ in STREAMS)
    cut = head[: len(head) // 2]
    events = decode_all(cut)
    assert isinstance(events[-1], StreamError) and events[-1].type == "bad_gateway"
    assert "message_stop" in events[-1].message
    assert not any(isinstance(e, MessageStop) for e in events)
    # the prefix up to the last complete event decodes to a prefix of the full stream
    assert decode_all(complete_prefix(cut), close=False) == decode_all(head)[: len(decode_all(complete_prefix(cut), close=False))]


THINKING_STREAM = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",'
    b'"model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,'
    b'"cache_creation_input_tokens":5,"cache_read_input_tokens":100,"output_tokens":1}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}\n\n'
    b'event: ping\ndata: {"type": "ping"}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me th\xc3\xa9nk"}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCg=="}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"EmwK"}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":1}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":2,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":2}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":3,"content_block":{"type":"text","text":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"Hi"}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":3,"delta":{"type":"citations_delta","citation":{}}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":3}\n\n'
    b'event: some_future_event\ndata: {"type":"some_future_event","x":1}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
    b'"usage":{"input_tokens":10,"cache_creation_input_tokens":5,"cache_read_input_tokens":120,"output_tokens":42}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def test_thinking_stream_decodes_at_every_byte_boundary():
    whole = decode_all(THINKING_STREAM)
    assert whole == [
        MessageStart("msg_1", "claude-sonnet-4-5", Usage(input_tokens=115, output_tokens=1, cache_read_tokens=100,
                                                         cache_write_tokens=5)),
        BlockStart(0, ThinkingBlock("")), Ping(),
        BlockDelta(0, "thinking", "Let me th\u00e9nk"), BlockDelta(0, "signature", "EqQBCg=="), BlockStop(0),
        BlockStart(1, RedactedThinkingBlock("EmwK")),
        BlockStop(1),
        # a server tool call arrives whole once its input is complete (no deltas)
        BlockStart(2, ServerToolBlock("srvtoolu_1", "web_search", {})), BlockStop(2),
        BlockStart(3, TextBlock("")), BlockDelta(3, "text", "Hi"), BlockStop(3),
        MessageDelta("end_turn", None, Usage(input_tokens=135, output_tokens=42, cache_read_tokens=120,
                                             cache_write_tokens=5)),
        MessageStop(),
    ]
    for cut in range(1, len(THINKING_STREAM)):
        assert decode_all(THINKING_STREAM, [cut]) == whole, cut
    # CRLF line ends decode the same
    assert decode_all(THINKING_STREAM.replace(b"\n", b"\r\n")) == whole


def test_error_event_and_garbage():
    err = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","model":"m","usage":{"input_tokens":3,"output_tokens":1}}}\n\n'
           b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n')
    events = decode_all(err)
    assert events[-1] == StreamError("overloaded", "Overloaded", 529)
    assert len(events) == 2  # close() adds nothing after the error
    events = decode_all(b'event: message_start\ndata: {not json\n\n')
    assert events[-1].type == "bad_gateway" and len(events) == 1


def test_message_delta_without_usage_fields():
    data = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"x","usage":{"input_tokens":7,"output_tokens":1}}}\n\n'
            b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"model_context_window_exceeded"},"usage":{"output_tokens":9,"input_tokens":null}}\n\n'
            b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    delta = decode_all(data)[1]
    assert delta == MessageDelta("max_tokens", None, Usage(input_tokens=7, output_tokens=9))


# =========================================================================== stream encoding


@pytest.mark.parametrize("name, head, _", STREAMS, ids=[s[0] for s in STREAMS])
def test_encoder_reproduces_captured_bytes(name, head, _):
    """decode(real Anthropic SSE) -> encode gives the same bytes (minus service_tier)."""
    data = complete_prefix(head)
    model = sse_events(data)[0][1]["message"]["model"]
    enc = CODEC.stream_encoder(Request(model=model, messages=[]))
    out = b"".join(enc.encode(e) for e in decode_all(data, close=False)) + enc.close()
    assert out == data.replace(b',"service_tier":"standard"', b"")


def encode_events(events, model="alias") -> bytes:
    enc = CODEC.stream_encoder(Request(model=model, messages=[]))
    return b"".join(enc.encode(e) for e in events) + enc.close()


def test_encoder_decoder_round_trip():
    events = [
        MessageStart("msg_abc", "claude-x", Usage(input_tokens=1150, output_tokens=1, cache_read_tokens=1000,
                                                  cache_write_tokens=100)),
        BlockStart(0, ThinkingBlock("")), Ping(), BlockDelta(0, "thinking", "hmm \u2603"),
        BlockDelta(0, "signature", "sig=="), BlockStop(0),
        BlockStart(1, TextBlock("")), BlockDelta(1, "text", 'quote " and \n newline'), BlockStop(1),
        BlockStart(2, ToolUseBlock("toolu_1", "ls", {})), BlockDelta(2, "json", '{"pa'),
        BlockDelta(2, "json", 'th": "."}'), BlockStop(2),
        MessageDelta("tool_use", None, Usage(input_tokens=1150, output_tokens=30, cache_read_tokens=1000,
                                             cache_write_tokens=100)),
        MessageStop(),
    ]
    data = encode_events(events)
    back = decode_all(data)
    assert back[0] == MessageStart("msg_abc", "alias", events[0].usage)  # the client's model alias
    assert back[1:] == events[1:]
    start = sse_events(data)[0][1]["message"]
    assert start["model"] == "alias" and start["id"] == "msg_abc"
    assert start["usage"] == {"input_tokens": 50, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000,
                              "output_tokens": 1}
    msg = sdk_accumulate(data)
    assert msg.content[0].thinking == "hmm \u2603" and msg.content[0].signature == "sig=="
    assert msg.content[2].input == {"path": "."} and msg.stop_reason == "tool_use"
    assert msg.usage.output_tokens == 30


def test_encoder_tolerates_openai_shaped_streams():
    # no usage at start, non-contiguous indices, no BlockStop, usage only in a late delta,
    # a stop_reason-less second MessageDelta
    events = [
        Ping(),
        MessageStart("chatcmpl-123", "gpt-4o"),
        BlockStart(0, TextBlock("")), BlockDelta(0, "text", "Hi"),
        BlockStart(5, ToolUseBlock("call_1", "ls", {})), BlockDelta(5, "json", "{}"),
        MessageDelta("tool_use"),
        MessageDelta(None, None, Usage(input_tokens=900, output_tokens=12, cache_read_tokens=512)),
        MessageStop(),
        BlockDelta(0, "text", "after the end"),
    ]
    data = encode_events(events)
    parsed = sse_events(data)
    assert parsed[0][0] == "message_start"  # the early ping is not sent (SDKs reject events before it)
    assert parsed[0][1]["message"]["id"].startswith("msg_")
    assert parsed[0][1]["message"]["usage"] == {"input_tokens": 0, "cache_creation_input_tokens": 0,
                                                "cache_read_input_tokens": 0, "output_tokens": 0}
    indices = [o["index"] for n, o in parsed if n.startswith("content_block")]
    assert set(indices) == {0, 1}
    names = [n for n, _ in parsed]
    assert names.count("content_block_stop") == 2 and names.count("message_delta") == 1
    assert names[-2:] == ["message_delta", "message_stop"]
    delta = parsed[-2][1]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert delta["usage"] == {"input_tokens": 388, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 512,
                              "output_tokens": 12}
    msg = sdk_accumulate(data)
    assert msg.content[0].text == "Hi" and msg.content[1].name == "ls" and msg.model == "alias"
    assert msg.usage.input_tokens == 388 and msg.usage.cache_read_input_tokens == 512


def test_encoder_message_stop_without_delta_and_without_start():
    data = encode_events([BlockStart(0, TextBlock("")), BlockDelta(0, "text", "x"), MessageStop()])
    names = [n for n, _ in sse_events(data)]
    assert names == ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"]
    assert sse_events(data)[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert sdk_accumulate(data).content[0].text == "x"
    # orphan text deltas open a block instead of producing an invalid index
    data = encode_events([MessageStart("m", "x"), BlockDelta(3, "text", "y"), MessageStop()])
    assert sdk_accumulate(data).content[0].text == "y"


def test_encoder_error_event():
    data = encode_events([MessageStart("m", "x"), BlockStart(0, TextBlock("")),
                          StreamError("overloaded", "upstream overloaded", 529), MessageStop()])
    name, obj = sse_events(data)[-1]
    assert name == "error"
    assert obj == {"type": "error", "error": {"type": "overloaded_error", "message": "upstream overloaded"}}
    assert data.endswith(b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"upstream overloaded"}}\n\n')


# =========================================================================== errors


@pytest.mark.parametrize("ctype, status, atype", [
    ("invalid_request", 400, "invalid_request_error"), ("unsupported", 400, "invalid_request_error"),
    ("context_length", 400, "invalid_request_error"), ("authentication", 401, "authentication_error"),
    ("permission", 403, "permission_error"), ("not_found", 404, "not_found_error"),
    ("request_too_large", 413, "request_too_large"), ("rate_limit", 429, "rate_limit_error"),
    ("api_error", 500, "api_error"), ("bad_gateway", 502, "api_error"), ("overloaded", 529, "overloaded_error"),
    ("timeout", 504, "timeout_error"),
])
def test_encode_error(ctype, status, atype):
    got_status, body = CODEC.encode_error(GatewayError(ctype, "upstream said: nope"))
    assert got_status == status
    assert body["type"] == "error" and body["error"]["type"] == atype
    assert "upstream said: nope" in body["error"]["message"]


def test_context_length_errors_use_anthropic_wording():
    _, body = CODEC.encode_error(GatewayError("context_length", "This model's maximum context length is 8192 tokens."))
    assert body["error"]["message"].startswith("prompt is too long")
    _, body = CODEC.encode_error(GatewayError("context_length", "prompt is too long: 9 tokens > 8 maximum"))
    assert body["error"]["message"] == "prompt is too long: 9 tokens > 8 maximum"


@pytest.mark.parametrize("status, body, ctype, retryable", [
    (400, {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}},
     "invalid_request", False),
    (400, {"type": "error", "error": {"type": "invalid_request_error",
                                      "message": "prompt is too long: 250000 tokens > 200000 maximum"}},
     "context_length", False),
    (401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
     "authentication", False),
    (403, {"type": "error", "error": {"type": "permission_error", "message": "no"}}, "permission", False),
    (404, {"type": "error", "error": {"type": "not_found_error", "message": "model: x"}}, "not_found", False),
    (413, {"type": "error", "error": {"type": "request_too_large", "message": "too big"}}, "request_too_large", False),
    (429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}, "rate_limit", True),
    (500, {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}, "api_error", True),
    (529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "overloaded", True),
    (504, {"type": "error", "error": {"type": "timeout_error", "message": "timed out"}}, "timeout", True),
    (408, {"error": "request timeout"}, "api_error", True),
])
def test_decode_error(status, body, ctype, retryable):
    err = CODEC.decode_error(status, orjson.dumps(body))
    assert err.type == ctype and err.retryable is retryable
    msg = body["error"]["message"] if isinstance(body["error"], dict) else body["error"]
    assert err.message == msg


def test_decode_error_garbage_and_html():
    err = CODEC.decode_error(502, b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>")
    assert err.type == "bad_gateway" and err.retryable
    assert "502 Bad Gateway" in err.message and "<h1>" not in err.message
    err = CODEC.decode_error(503, b"\xff\xfe not json at all" * 100)
    assert err.type == "overloaded" and err.retryable and len(err.message) < 300
    err = CODEC.decode_error(400, b"")
    assert err.type == "invalid_request" and not err.retryable and "empty" in err.message
    err = CODEC.decode_error(429, b"[1, 2]")
    assert err.type == "rate_limit" and err.retryable


# =========================================================================== fake upstream + official SDK


@pytest.fixture(scope="module")
def fake():
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def sdk(fake):
    fake.reset()
    return anthropic.Anthropic(base_url=fake.url, api_key="x", max_retries=0)


TOOLS = [{"name": "tree", "description": "List a directory", "input_schema": {
    "type": "object", "properties": {"path": {"type": "string"}, "depth": {"type": "integer"}}}},
    {"name": "read", "description": "Read a file", "input_schema": {
        "type": "object", "properties": {"path": {"type": "string"}}}}]
HELLO = [{"role": "user", "content": "hi"}]


def test_sdk_stream_with_tool_use(fake, sdk):
    with sdk.messages.stream(model="mock:tools,cached=100,cache_write=7", max_tokens=256, messages=HELLO,
                             tools=TOOLS) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["tool_use"]
    assert final.content[0].name == "tree" and final.content[0].input == {"path": "src", "depth": 2}
    assert final.usage.cache_read_input_tokens == 100 and final.usage.cache_creation_input_tokens == 7
    assert final.usage.output_tokens > 0
    rec = fake.last()
    assert rec.headers["x-api-key"] == "x" and rec.headers["anthropic-version"]
    for _ in range(100):  # the server counts the stream after its final write returns
        if fake.completed_streams:
            break
        time.sleep(0.01)
    assert fake.completed_streams == 1


def test_sdk_stream_parallel_tools_and_text(sdk):
    with sdk.messages.stream(model="mock:parallel_tools", max_tokens=256, messages=HELLO, tools=TOOLS) as stream:
        final = stream.get_final_message()
    assert [b.name for b in final.content] == ["tree", "read"]
    assert final.content[1].input == {"path": "README.md"}
    with sdk.messages.stream(model="mock:tokens=5", max_tokens=256, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
    assert text == "tok0 tok1 tok2 tok3 tok4"


def test_sdk_stream_with_thinking(sdk):
    with sdk.messages.stream(model="mock:thinking", max_tokens=2048, messages=HELLO,
                             thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert "thinking" in kinds and "signature" in kinds
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].signature == SIGNATURE and final.content[0].thinking.startswith("The user wants")
    assert final.content[1].text == "Hello world this is a mock completion"
    assert final.stop_reason == "end_turn"


def test_sdk_non_stream_count_tokens_and_models(sdk):
    msg = sdk.messages.create(model="mock:thinking,tools", max_tokens=2048, messages=HELLO, tools=TOOLS,
                              thinking={"type": "enabled", "budget_tokens": 1024})
    assert [b.type for b in msg.content] == ["thinking", "tool_use"] and msg.stop_reason == "tool_use"
    assert msg.id.startswith("msg_") and msg.usage.input_tokens > 0
    body = {"model": "mock", "messages": HELLO, "tools": TOOLS}
    count = sdk.messages.count_tokens(**body)
    assert count.input_tokens == sdk.messages.create(max_tokens=10, **body).usage.input_tokens
    models = sdk.models.list()
    assert [m.id for m in models.data][0] == "claude-opus-4-5-20251101"
    assert models.data[0].display_name and models.data[0].type == "model"


def test_sdk_errors(fake, sdk):
    with pytest.raises(anthropic.APIStatusError) as err:
        sdk.messages.create(model="mock:status=529", max_tokens=10, messages=HELLO)
    assert err.value.status_code == 529 and err.value.body["error"]["type"] == "overloaded_error"
    with pytest.raises(anthropic.RateLimitError) as err:
        sdk.messages.create(model="mock:status=429", max_tokens=10, messages=HELLO)
    assert err.value.response.headers["retry-after"] == "1"
    with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
        sdk.messages.create(model="mock:context_length", max_tokens=10, messages=HELLO)
    with pytest.raises(anthropic.BadRequestError, match="budget_tokens"):
        sdk.messages.create(model="mock", max_tokens=1000, messages=HELLO,
                            thinking={"type": "enabled", "budget_tokens": 1024})
    with pytest.raises(anthropic.APIStatusError) as err:
        with sdk.messages.stream(model="mock:mid_error", max_tokens=10, messages=HELLO) as stream:
            for _ in stream:
                pass
    assert "overloaded_error" in str(err.value)


def test_fake_checks_auth_headers(fake):
    fake.reset()
    r = httpx.post(fake.url + "/v1/messages", json=base_body(model="mock"), headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = httpx.post(fake.url + "/v1/messages", json=base_body(model="mock"), headers={"x-api-key": "k"})
    assert r.status_code == 400 and "anthropic-version" in r.json()["error"]["message"]
    assert len(fake.requests) == 2


def post_stream(fake, body: dict) -> bytes:
    with httpx.stream("POST", fake.url + "/v1/messages", json=body,
                      headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}) as r:
        assert r.status_code == 200, r.read()
        chunks = []
        try:
            for chunk in r.iter_raw(7):  # small reads: the decoder sees arbitrary chunking
                chunks.append(chunk)
        except httpx.TransportError:  # drop_after aborts the connection mid-stream
            pass
        return b"".join(chunks)


def test_codec_against_fake_upstream(fake):
    """A request from an OpenAI client, encoded by the codec, is accepted by the fake's
    Anthropic rules (thinking budget, no temperature), and its stream decodes fully."""
    fake.reset()
    req = Request(model="mock:thinking,tools,cached=40", source_format="openai_chat",
                  messages=[Message("user", [TextBlock("hi")])], temperature=0.2, max_tokens=3000, stream=True,
                  reasoning=Reasoning(effort="high"),
                  tools=[Tool(t["name"], t["description"], t["input_schema"]) for t in TOOLS])
    body = CODEC.encode_request(req)
    data = post_stream(fake, body)
    dec = CODEC.stream_decoder()
    events = []
    for i in range(0, len(data), 5):
        events += dec.feed(data[i:i + 5])
    events += dec.close()
    assert isinstance(events[-1], MessageStop)
    thinking = "".join(e.value for e in events if isinstance(e, BlockDelta) and e.kind == "thinking")
    assert thinking.startswith("The user wants")
    assert [e.value for e in events if isinstance(e, BlockDelta) and e.kind == "signature"] == [SIGNATURE]
    tool = next(e.block for e in events if isinstance(e, BlockStart) and isinstance(e.block, ToolUseBlock))
    assert tool.id == "toolu_fake0001"
    delta = next(e for e in events if isinstance(e, MessageDelta))
    assert delta.stop_reason == "tool_use" and delta.usage.cache_read_tokens == 40
    assert delta.usage.input_tokens == input_tokens_of(fake.last().body) + 40  # canonical: cache included
    # and the same events re-encoded for an Anthropic client parse in the SDK
    msg = sdk_accumulate(encode_events(events, model="my-route"))
    assert [b.type for b in msg.content] == ["thinking", "tool_use"] and msg.model == "my-route"


def test_codec_against_fake_mid_error_and_drop(fake):
    fake.reset()
    events = decode_all(post_stream(fake, base_body(model="mock:mid_error,tokens=20", stream=True)))
    assert events[-1] == StreamError("overloaded", "Overloaded", 529)
    events = decode_all(post_stream(fake, base_body(model="mock:drop_after=4,tokens=20", stream=True)))
    assert events[-1].type == "bad_gateway"
    err = CODEC.decode_error(529, httpx.post(fake.url + "/v1/messages", json=base_body(model="mock:status=529"),
                                             headers={"x-api-key": "k", "anthropic-version": "1"}).content)
    assert err.type == "overloaded" and err.message == "Overloaded" and err.retryable
