"""OpenAI Responses codec: Codex captures, request/response/stream translation both ways, errors,
and wire compatibility with the official `openai` SDK (against the fake upstream and against the
codec's own encoder output)."""

from __future__ import annotations

import copy
import glob
import json
import os
import typing

import httpx
import openai
import orjson
import pytest
from aiohttp import web
from openai.types.responses import Response as SDKResponse
from openai.types.responses import ResponseStreamEvent

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
from providers.codecs.openai_responses import CODEC, FOREIGN_SIG, REDACTED, OpenAIResponsesCodec
from tests.fakes.base import Behaviour, FakeServer
from tests.fakes.openai import context_length_error as chat_context_length_error
from tests.fakes.openai import openai_error_body
from tests.fakes.openai_responses import FakeOpenAIResponses, context_length_error

CAPTURE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "agents")
CAPTURES = sorted(glob.glob(os.path.join(CAPTURE_DIR, "codex", "*", "*.json")))
CODEX_PROMPT_START = "You are a coding agent running in the Codex CLI"

EVENT_MODELS = {}
for _cls in typing.get_args(typing.get_args(ResponseStreamEvent)[0]):
    EVENT_MODELS[typing.get_args(_cls.model_fields["type"].annotation)[0]] = _cls


# --------------------------------------------------------------------------- helpers


def capture_body(path: str) -> dict:
    with open(path) as f:
        return json.load(f)["body"]


def strip_ids(item: dict) -> dict:
    return {k: v for k, v in item.items() if k not in ("id", "status")}


def decode_all(data: bytes, pieces: list[int] | None = None) -> list:
    dec = CODEC.stream_decoder()
    events = []
    if pieces is None:
        events += dec.feed(data)
    else:
        start = 0
        for cut in pieces + [len(data)]:
            events += dec.feed(data[start:cut])
            start = cut
    return events + dec.close()


def encode_all(events, request: Request) -> bytes:
    enc = CODEC.stream_encoder(request)
    return b"".join(enc.encode(e) for e in events) + enc.close()


def sse_events(data: bytes) -> list[tuple[str, dict]]:
    """(event line, parsed data) pairs of an SSE byte string (blank-line separated)."""
    out = []
    for block in data.decode().split("\n\n"):
        if not block.strip() or block.startswith(":"):
            continue
        lines = block.split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block[:200]
        out.append((lines[0][7:], json.loads(lines[1][6:])))
    return out


def validate_strict(events: list[tuple[str, dict]]) -> None:
    """Every event validates against the SDK's pydantic model for its type (required fields,
    literals), event line == data.type, sequence numbers count from 0."""
    for n, (name, data) in enumerate(events):
        assert name == data["type"]
        assert data["sequence_number"] == n
        if data["type"] == "response.failed" and data["response"]["error"]["code"] == "context_length_exceeded":
            # Deliberate: Codex keys its context-window handling on this code, which the SDK's
            # literal list lacks (the SDK itself parses it leniently at runtime).
            data = copy.deepcopy(data)
            data["response"]["error"]["code"] = "server_error"
        EVENT_MODELS[data["type"]].model_validate(data)


def summarize(events: list) -> dict:
    """Blocks rebuilt from canonical events: kind, start block, concatenated deltas by kind."""
    blocks: dict[int, dict] = {}
    order: list[int] = []
    out = {"start": None, "stop_reason": None, "usage": None, "error": None, "stopped": False}
    for ev in events:
        if isinstance(ev, MessageStart):
            out["start"] = ev
        elif isinstance(ev, BlockStart):
            assert ev.index not in blocks
            blocks[ev.index] = {"block": ev.block, "text": "", "json": "", "thinking": "", "signature": "",
                                "closed": False}
            order.append(ev.index)
        elif isinstance(ev, BlockDelta):
            assert not blocks[ev.index]["closed"]
            blocks[ev.index][ev.kind] += ev.value
        elif isinstance(ev, BlockStop):
            blocks[ev.index]["closed"] = True
        elif isinstance(ev, MessageDelta):
            out["stop_reason"], out["usage"] = ev.stop_reason, ev.usage
        elif isinstance(ev, MessageStop):
            out["stopped"] = True
        elif isinstance(ev, StreamError):
            out["error"] = ev
    out["blocks"] = [blocks[i] for i in order]
    assert all(b["closed"] for b in out["blocks"]) or out["error"]
    return out


TOOLS_BODY = [
    {"type": "namespace", "name": "repo", "description": "Repository tools.",
     "tools": [{"type": "function", "name": "list_dir", "description": "List a directory.", "strict": False,
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}]},
    {"type": "function", "name": "read_file", "description": "Read a file.", "strict": False,
     "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}},
    {"type": "web_search", "external_web_access": False},
]

PLAIN_TOOLS = [{"type": "function", "name": "read_file", "description": "Read a file.", "strict": False,
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}]


def client_request(**over) -> Request:
    body = {"model": "gpt-5-codex", "input": "hi", "stream": True, "tools": PLAIN_TOOLS, "tool_choice": "auto",
            "parallel_tool_calls": True, "reasoning": {"effort": "high", "summary": "auto"},
            "include": ["reasoning.encrypted_content"], "store": False}
    body.update(over)
    return CODEC.decode_request(body)


def canonical_stream(text="héllo 👋 wörld, ça va?", sig="EqQBCkgIARABGAIiQGZha2Vfc2lnbmF0dXJl") -> list:
    return [
        MessageStart(id="msg_01XYZ", model="claude-sonnet-4", usage=Usage(input_tokens=120, cache_read_tokens=100)),
        Ping(),
        BlockStart(0, ThinkingBlock("")),
        BlockDelta(0, "thinking", "Let me think "),
        BlockDelta(0, "thinking", "about ünïcode."),
        BlockDelta(0, "signature", sig),
        BlockStop(0),
        BlockStart(1, TextBlock("")),
        BlockDelta(1, "text", text[:7]),
        BlockDelta(1, "text", text[7:]),
        BlockStop(1),
        BlockStart(2, ToolUseBlock(id="toolu_01abc", name="read_file", input={})),
        BlockDelta(2, "json", '{"path": '),
        BlockDelta(2, "json", '"README.md"}'),
        BlockStop(2),
        BlockStart(3, ToolUseBlock(id="toolu_02def", name="repo__list_dir", input={})),
        BlockDelta(3, "json", '{"path": "src"}'),
        BlockStop(3),
        MessageDelta("tool_use", usage=Usage(output_tokens=42, reasoning_tokens=10)),
        MessageStop(),
    ]


@pytest.fixture(scope="module")
def fake():
    server = FakeOpenAIResponses().start()
    yield server
    server.stop()


class ReplayServer(FakeServer):
    """Serves whatever bytes the test sets, so the SDK can parse the codec's own output."""

    def __init__(self) -> None:
        super().__init__()
        self.reply: tuple[int, str, bytes] = (200, "application/json", b"{}")

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/responses", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        await self.record(request)
        status, ctype, body = self.reply
        return web.Response(status=status, body=body, headers={"Content-Type": ctype})


@pytest.fixture(scope="module")
def replay():
    server = ReplayServer().start()
    yield server
    server.stop()


def sdk(server: FakeServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0, timeout=10)


# --------------------------------------------------------------------------- Codex captures


def test_captures_present():
    assert len(CAPTURES) >= 2, f"Codex captures missing under {CAPTURE_DIR}"


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: "/".join(p.split("/")[-2:]))
def test_decode_codex_capture(path):
    body = capture_body(path)
    req = CODEC.decode_request(body)
    assert req.source_format == "openai_responses"
    assert req.model == body["model"] and req.stream is True

    # developer messages (base prompt + skills/permissions) -> system, one block per part
    assert len(req.system) == 3
    assert req.system[0].text.startswith(CODEX_PROMPT_START)
    assert req.system[1].text.startswith("<skills_instructions>")
    # user messages stay separate canonical messages
    assert req.messages[0].role == "user" and req.messages[0].content[0].text.startswith("<environment_context>")
    assert req.messages[1].content == [TextBlock("list files")]

    calls = [i for i in body["input"] if i.get("type") == "function_call"]
    if calls:  # second turn: the function_call / function_call_output replay
        assistant, results = req.messages[2], req.messages[3]
        assert assistant.role == "assistant" and results.role == "user"
        (use,) = assistant.content
        assert isinstance(use, ToolUseBlock)
        assert use.id == calls[0]["call_id"] and use.name == "exec_command"
        assert use.input == json.loads(calls[0]["arguments"])
        (result,) = results.content
        assert isinstance(result, ToolResultBlock) and result.tool_use_id == use.id
        assert result.content[0].text.startswith("failed to parse function arguments")
    else:
        assert len(req.messages) == 2

    names = [t.name for t in req.tools]
    assert "exec_command" in names
    ns_tools = [t for t in req.tools if t.extra.get("namespace") == "multi_agent_v1"]
    assert {t.name for t in ns_tools} >= {"multi_agent_v1__close_agent", "multi_agent_v1__spawn_agent"}
    nested = next(t for t in body["tools"] if t["type"] == "namespace")["tools"][0]
    close = next(t for t in ns_tools if t.name == "multi_agent_v1__" + nested["name"])
    assert close.input_schema == nested["parameters"] and close.description == nested["description"]
    hosted = [t for t in req.tools if t.extra.get("hosted")]
    assert [t.extra["hosted"] for t in hosted] == [{"type": "web_search", "external_web_access": False}]

    assert req.tool_choice == ToolChoice("auto", disable_parallel_tool_use=False)
    assert req.reasoning.summary == "auto" and req.reasoning.enabled
    assert req.reasoning.effort == body["reasoning"].get("effort")
    assert req.extra["include"] == ["reasoning.encrypted_content"]
    assert req.extra["prompt_cache_key"] == body["prompt_cache_key"]
    assert req.extra["client_metadata"] == body["client_metadata"]
    assert req.extra["store"] is False


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: "/".join(p.split("/")[-2:]))
def test_reencode_codex_capture_same_format(path):
    body = capture_body(path)
    out = CODEC.encode_request(CODEC.decode_request(copy.deepcopy(body)))
    # tools come back exactly: namespace re-nested, hosted web_search passed through, strict kept
    assert out["tools"] == body["tools"]
    # input items survive (item ids/status are not replayed upstream)
    assert [strip_ids(i) for i in out["input"]] == [strip_ids(i) for i in body["input"]]
    for key in body:
        if key not in ("input", "tools"):
            assert out[key] == body[key], key
    assert "instructions" not in out
    assert not any(k.startswith("_") for k in out)
    orjson.dumps(out)  # JSON-serialisable


@pytest.mark.parametrize("path", CAPTURES[-1:], ids=lambda p: "/".join(p.split("/")[-2:]))
def test_encode_codex_capture_cross_format(path):
    req = CODEC.decode_request(capture_body(path))
    req.source_format = "anthropic_messages"  # pretend another front door decoded it
    req.extra = {}
    with pytest.raises(UnsupportedFeature) as exc:  # hosted web_search is meaningful only same-format
        CODEC.encode_request(req)
    assert "web_search" in exc.value.message
    req.tools = [t for t in req.tools if not t.extra.get("hosted")]
    out = CODEC.encode_request(req)
    assert out["instructions"].startswith(CODEX_PROMPT_START)
    assert out["instructions"].count("\n\n<") >= 2  # all three system parts joined
    assert all(i.get("role") not in ("developer", "system") for i in out["input"])
    assert out["store"] is False
    assert out["include"] == ["reasoning.encrypted_content"]
    assert "prompt_cache_key" not in out and "client_metadata" not in out
    ns = next(t for t in out["tools"] if t["type"] == "namespace")
    assert ns["name"] == "multi_agent_v1" and all(t["strict"] is False for t in ns["tools"])
    assert all(t["type"] in ("function", "namespace") for t in out["tools"])


# --------------------------------------------------------------------------- decode_request details


def test_item_merging_and_order():
    body = {"model": "m", "input": [
        {"role": "user", "content": "do it"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "plan A"},
                                                         {"type": "summary_text", "text": "plan B"}],
         "encrypted_content": "gAAAAABenc"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
        {"type": "function_call", "call_id": "c1", "name": "ls", "arguments": "{\"path\":\".\"}"},
        {"type": "function_call", "call_id": "c2", "name": "cat", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "a b"},
        {"type": "function_call_output", "call_id": "c2",
         "output": [{"type": "input_text", "text": "img:"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "thanks"}]},
    ]}
    req = CODEC.decode_request(body)
    assert [m.role for m in req.messages] == ["user", "assistant", "user", "user"]
    thinking, text, use1, use2 = req.messages[1].content
    assert thinking == ThinkingBlock("plan A\n\nplan B", signature="rs_1|gAAAAABenc")
    assert text == TextBlock("Looking.")
    assert (use1.id, use1.name, use1.input) == ("c1", "ls", {"path": "."})
    assert use2.input == {}
    r1, r2 = req.messages[2].content
    assert r1 == ToolResultBlock("c1", [TextBlock("a b")])
    assert r2.content[1] == ImageBlock(media_type="image/png", data="iVBORw0KGgo=")
    assert req.messages[3].content == [TextBlock("thanks")]

    out = CODEC.encode_request(req)
    kinds = [(i["type"], i.get("role")) for i in out["input"]]
    assert kinds == [("message", "user"), ("reasoning", None), ("message", "assistant"), ("function_call", None),
                     ("function_call", None), ("function_call_output", None), ("function_call_output", None),
                     ("message", "user")]
    # encrypted reasoning goes back without its id (as Codex does; ids of unstored items are rejected)
    assert out["input"][1] == {"type": "reasoning", "summary": [{"type": "summary_text", "text": "plan A\n\nplan B"}],
                               "encrypted_content": "gAAAAABenc"}
    assert out["input"][6]["output"][1] == {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=",
                                            "detail": "auto"}


def test_string_input_and_instructions():
    req = CODEC.decode_request({"model": "m", "instructions": "Be brief.", "input": "hello", "max_output_tokens": 64,
                                "temperature": 0.2, "top_p": 0.9, "metadata": {"k": "v"}, "user": "u1",
                                "truncation": "auto", "service_tier": "flex"})
    assert req.system == [TextBlock("Be brief.")]
    assert req.messages == [Message("user", [TextBlock("hello")])]
    assert (req.max_tokens, req.temperature, req.top_p, req.metadata) == (64, 0.2, 0.9, {"k": "v"})
    assert req.tools is None and req.tool_choice is None
    assert {k: req.extra[k] for k in ("user", "truncation", "service_tier")} == {
        "user": "u1", "truncation": "auto", "service_tier": "flex"}
    out = CODEC.encode_request(req)
    assert out["instructions"] == "Be brief."
    assert out["input"] == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}]
    assert (out["max_output_tokens"], out["temperature"], out["top_p"]) == (64, 0.2, 0.9)
    assert out["store"] is False and out["user"] == "u1" and "tools" not in out


def test_mid_conversation_developer_message_keeps_its_place():
    body = {"model": "m", "input": [
        {"role": "developer", "content": "base"},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "ok"},
        {"role": "developer", "content": [{"type": "input_text", "text": "approval mode changed"}]},
        {"role": "user", "content": "two"},
    ]}
    req = CODEC.decode_request(body)
    assert [b.text for b in req.system] == ["base", "approval mode changed"]
    assert [m.role for m in req.messages] == ["user", "assistant", "user"]
    out = CODEC.encode_request(req)
    assert [(i["role"], i["content"][0]["text"]) for i in out["input"]] == [
        ("developer", "base"), ("user", "one"), ("assistant", "ok"), ("developer", "approval mode changed"),
        ("user", "two")]
    # a gateway-modified system prompt falls back to instructions
    req.system.insert(0, TextBlock("gateway policy"))
    out = CODEC.encode_request(req)
    assert out["instructions"] == "gateway policy\n\nbase\n\napproval mode changed"
    assert [i["role"] for i in out["input"]] == ["user", "assistant", "user"]


def test_unknown_items_pass_through_same_format_only():
    search = {"type": "web_search_call", "id": "ws_1", "status": "completed",
              "action": {"type": "search", "query": "weather"}}
    body = {"model": "m", "input": [{"role": "user", "content": "q"}, search,
                                    {"role": "assistant", "content": "sunny"}]}
    req = CODEC.decode_request(body)
    assert [m.role for m in req.messages] == ["user", "assistant"]
    out = CODEC.encode_request(req)
    assert out["input"][1] == search and out["input"][2]["role"] == "assistant"
    req.source_format = "openai_chat"
    assert search not in CODEC.encode_request(req)["input"]


def test_namespaced_function_call_replay_and_tool_choice():
    body = {"model": "m", "tools": TOOLS_BODY, "tool_choice": {"type": "function", "name": "read_file"},
            "parallel_tool_calls": False,
            "input": [{"role": "user", "content": "go"},
                      {"type": "function_call", "call_id": "c1", "namespace": "repo", "name": "list_dir",
                       "arguments": "{\"path\":\"src\"}"},
                      {"type": "function_call_output", "call_id": "c1", "output": "main.py"}]}
    req = CODEC.decode_request(body)
    assert req.messages[1].content[0].name == "repo__list_dir"
    assert req.tool_choice == ToolChoice("tool", name="read_file", disable_parallel_tool_use=True)
    out = CODEC.encode_request(req)
    assert out["tools"] == TOOLS_BODY
    call = out["input"][1]
    assert (call["namespace"], call["name"]) == ("repo", "list_dir")
    assert out["tool_choice"] == {"type": "function", "name": "read_file"}
    assert out["parallel_tool_calls"] is False


@pytest.mark.parametrize("raw, canonical, back", [
    ("auto", ToolChoice("auto"), "auto"),
    ("none", ToolChoice("none"), "none"),
    ("required", ToolChoice("any"), "required"),
    ({"type": "function", "name": "read_file"}, ToolChoice("tool", "read_file"), {"type": "function", "name": "read_file"}),
    ({"type": "web_search"}, ToolChoice("any"), {"type": "web_search"}),
    ({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "read_file"}]},
     ToolChoice("auto"), {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "read_file"}]}),
])
def test_tool_choice_mapping(raw, canonical, back):
    req = CODEC.decode_request({"model": "m", "input": "x", "tools": TOOLS_BODY, "tool_choice": raw})
    assert req.tool_choice == canonical
    assert CODEC.encode_request(req)["tool_choice"] == back


def test_text_format_json_schema():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
              "additionalProperties": False}
    text = {"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True},
            "verbosity": "low"}
    req = CODEC.decode_request({"model": "m", "input": "x", "text": text})
    assert req.response_format == {"type": "json_schema",
                                   "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    assert CODEC.encode_request(req)["text"] == text
    req.source_format = "openai_chat"
    assert CODEC.encode_request(req)["text"] == {"format": text["format"]}


def test_reasoning_signature_scheme():
    items = [
        {"type": "reasoning", "id": "rs_a", "summary": [], "encrypted_content": "gAAAAABx"},
        {"type": "reasoning", "id": "rs_b", "summary": [{"type": "summary_text", "text": "s"}]},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "t"}],
         "encrypted_content": FOREIGN_SIG + "EqQBanthropic"},
        {"type": "reasoning", "summary": [], "encrypted_content": REDACTED + "cmVkYWN0ZWQ="},
    ]
    req = CODEC.decode_request({"model": "m", "input": [{"role": "user", "content": "q"}] + items})
    blocks = req.messages[1].content
    assert blocks == [ThinkingBlock("", "rs_a|gAAAAABx"), ThinkingBlock("s", "rs_b|"),
                      ThinkingBlock("t", "EqQBanthropic"), RedactedThinkingBlock("cmVkYWN0ZWQ=")]
    out = CODEC.encode_request(req)["input"]
    # OpenAI-made reasoning goes back; foreign/redacted thinking cannot be verified by OpenAI: dropped
    assert out[1:] == [{"type": "reasoning", "summary": [], "encrypted_content": "gAAAAABx"},
                       {"type": "reasoning", "id": "rs_b", "summary": [{"type": "summary_text", "text": "s"}]}]


def test_cross_format_request_encoding():
    req = Request(
        model="gpt-5", source_format="anthropic_messages", stream=True,
        system=[TextBlock("sys one"), TextBlock("sys two")],
        messages=[Message("user", [TextBlock("look"), ImageBlock(url="https://x/img.png", detail="high")]),
                  Message("assistant", [ThinkingBlock("hmm", signature="EqQBforeign"),
                                        ToolUseBlock("toolu_1", "read_file", {"path": "a"})]),
                  Message("user", [ToolResultBlock("toolu_1", [TextBlock("line1"), TextBlock("line2")],
                                                   is_error=True), TextBlock("go on")])],
        tools=[Tool("read_file", "Read.", {"type": "object", "properties": {}}, extra={"eager_input_streaming": True})],
        tool_choice=ToolChoice("any"), max_tokens=1000, reasoning=Reasoning(budget_tokens=8000),
        response_format=None, extra={"anthropic_beta": ["x"]})
    out = CODEC.encode_request(req)
    assert out["instructions"] == "sys one\n\nsys two"
    assert out["input"] == [
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": "https://x/img.png", "detail": "high"}]},
        {"type": "function_call", "call_id": "toolu_1", "name": "read_file", "arguments": "{\"path\":\"a\"}"},
        {"type": "function_call_output", "call_id": "toolu_1", "output": "line1\nline2"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go on"}]},
    ]
    assert out["tools"] == [{"type": "function", "name": "read_file", "description": "Read.",
                             "parameters": {"type": "object", "properties": {}}, "strict": False}]
    assert out["tool_choice"] == "required" and out["parallel_tool_calls"] is True
    assert out["reasoning"] == {"effort": "medium"} and out["include"] == ["reasoning.encrypted_content"]
    assert out["max_output_tokens"] == 1000 and out["store"] is False and out["stream"] is True
    assert "anthropic_beta" not in out
    with pytest.raises(UnsupportedFeature):
        CODEC.encode_request(Request(model="m", messages=[], stop=["\n\n"]))


@pytest.mark.parametrize("body, field", [
    ([], "body"),
    ({"input": "x"}, "model"),
    ({"model": "m", "input": 5}, "input"),
    ({"model": "m", "input": [5]}, "input[0]"),
    ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"model": "m", "input": [{"type": "message", "role": "user", "content": [{"type": "bogus"}]}]},
     "input[0].content[0].type"),
    ({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{nope"}]},
     "input[0].arguments"),
    ({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
    ({"model": "m", "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"model": "m", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "m", "max_output_tokens": "100"}, "max_output_tokens"),
    ({"model": "m", "temperature": 3}, "temperature"),
    ({"model": "m", "top_p": "1"}, "top_p"),
    ({"model": "m", "stream": "yes"}, "stream"),
    ({"model": "m", "tools": {}}, "tools"),
    ({"model": "m", "tools": [{"type": "function"}]}, "tools[0].name"),
    ({"model": "m", "tools": [{"type": "namespace", "name": "n", "tools": [{"type": "function"}]}]},
     "tools[0].tools[0].name"),
    ({"model": "m", "tool_choice": "sometimes"}, "tool_choice"),
    ({"model": "m", "parallel_tool_calls": "no"}, "parallel_tool_calls"),
    ({"model": "m", "reasoning": "high"}, "reasoning"),
    ({"model": "m", "text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ({"model": "m", "instructions": ["x"]}, "instructions"),
])
def test_validation_errors_name_the_field(body, field):
    with pytest.raises(InvalidRequest) as exc:
        CODEC.decode_request(body)
    assert field in exc.value.message
    assert exc.value.status == 400 and exc.value.type == "invalid_request"


@pytest.mark.parametrize("part", [
    {"type": "input_image", "file_id": "file-abc"},
    {"type": "input_file", "file_id": "file-abc"},
    {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}},
])
def test_unsupported_content(part):
    with pytest.raises(UnsupportedFeature) as exc:
        CODEC.decode_request({"model": "m", "input": [{"role": "user", "content": [part]}]})
    assert exc.value.status == 400 and exc.value.type == "unsupported"


def test_image_urls():
    req = CODEC.decode_request({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
        {"type": "input_image", "image_url": "data:image/jpeg;base64,/9j/4AAQ"}]}]})
    assert req.messages[0].content == [ImageBlock(url="https://example.com/a.png", detail="low"),
                                       ImageBlock(media_type="image/jpeg", data="/9j/4AAQ")]


# --------------------------------------------------------------------------- non-stream responses


def fake_build(body: dict, model: str) -> tuple[dict, list[dict]]:
    body = dict(body, model=model)
    return FakeOpenAIResponses().build(body, Behaviour.parse(model), "resp_test0001", 1700000000)


def test_decode_response_reasoning_text_and_usage():
    final, _ = fake_build({"input": "hi", "include": ["reasoning.encrypted_content"]}, "mock:reasoning,cached=50")
    resp = CODEC.decode_response(final)
    thinking, text = resp.content
    assert thinking.thinking.startswith("**Planning the answer**")
    item = final["output"][0]
    assert thinking.signature == item["id"] + "|" + item["encrypted_content"]
    assert text == TextBlock("Hello world this is a mock completion")
    assert resp.stop_reason == "end_turn" and resp.id == "resp_test0001"
    u = final["usage"]
    assert resp.usage == Usage(input_tokens=u["input_tokens"], output_tokens=u["output_tokens"],
                               cache_read_tokens=50, reasoning_tokens=u["output_tokens_details"]["reasoning_tokens"])
    assert resp.usage.input_tokens >= 50  # canonical: cached tokens are part of input_tokens


def test_decode_response_tool_calls_and_stop_reasons():
    final, _ = fake_build({"input": "hi", "tools": TOOLS_BODY}, "mock:parallel_tools")
    resp = CODEC.decode_response(final)
    assert resp.stop_reason == "tool_use"
    assert [(b.id, b.name, b.input) for b in resp.content] == [
        ("call_fake0001", "repo__list_dir", {"path": "src", "depth": 2}),
        ("call_fake0002", "read_file", {"path": "README.md"})]
    final, _ = fake_build({"input": "hi"}, "mock:length")
    assert CODEC.decode_response(final).stop_reason == "max_tokens"
    final["incomplete_details"] = {"reason": "content_filter"}
    assert CODEC.decode_response(final).stop_reason == "refusal"
    with pytest.raises(GatewayError) as exc:
        CODEC.decode_response(dict(final, status="failed",
                                   error={"code": "rate_limit_exceeded", "message": "slow down"}))
    assert exc.value.type == "rate_limit" and exc.value.retryable
    with pytest.raises(GatewayError) as exc:
        CODEC.decode_response({"object": "chat.completion"})
    assert exc.value.type == "bad_gateway"


def test_encode_response_validates_against_sdk_and_round_trips():
    req = client_request(stream=False, tools=TOOLS_BODY[:2], max_output_tokens=500)
    resp = Response(id="msg_01abc", model="claude-sonnet-4", content=[
        ThinkingBlock("thinking...", signature="EqQBforeign"),
        TextBlock("Here you go."),
        ToolUseBlock("toolu_9", "repo__list_dir", {"path": "src"}),
    ], stop_reason="tool_use", usage=Usage(input_tokens=1000, output_tokens=80, cache_read_tokens=900,
                                           reasoning_tokens=30))
    body = CODEC.encode_response(resp, req)
    body_for_sdk = dict(body, tools=[])  # the SDK pinned here predates namespace tools
    sdk_resp = SDKResponse.model_validate(body_for_sdk)
    assert sdk_resp.output_text == "Here you go."
    assert body["id"] == "resp_msg_01abc" and body["model"] == "gpt-5-codex" and body["status"] == "completed"
    assert body["max_output_tokens"] == 500 and body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["usage"] == {"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 900},
                             "output_tokens": 80, "output_tokens_details": {"reasoning_tokens": 30},
                             "total_tokens": 1080}
    call = body["output"][2]
    assert (call["namespace"], call["name"], call["call_id"]) == ("repo", "list_dir", "toolu_9")
    assert body["output"][0]["encrypted_content"] == FOREIGN_SIG + "EqQBforeign"
    assert body["tools"] == TOOLS_BODY[:2]

    back = CODEC.decode_response(body)
    assert back.content == resp.content  # foreign signature and namespaced name survive
    assert back.stop_reason == "tool_use" and back.usage == resp.usage

    resp.stop_reason, resp.content = "max_tokens", [TextBlock("trunc")]
    body = CODEC.encode_response(resp, req)
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert CODEC.decode_response(body).stop_reason == "max_tokens"


# --------------------------------------------------------------------------- stream decoder


def fake_stream(body: dict, model: str) -> bytes:
    fake_server = FakeOpenAIResponses()
    _, events = fake_server.build(dict(body, model=model), Behaviour.parse(model), "resp_test0002", 1700000000)
    return b"".join(fake_server.stream_chunks(events))


STREAMS = {
    "fake_reasoning_text": lambda: fake_stream({"input": "hi", "include": ["reasoning.encrypted_content"]},
                                               "mock:reasoning,tokens=4,cached=7"),
    "fake_parallel_tools": lambda: fake_stream({"input": "hi", "tools": TOOLS_BODY}, "mock:parallel_tools"),
    "encoder_output": lambda: encode_all(canonical_stream(), client_request(tools=TOOLS_BODY[:2])),
}


@pytest.mark.parametrize("name", list(STREAMS))
def test_stream_decoder_any_chunking(name):
    data = STREAMS[name]()
    reference = decode_all(data)
    assert isinstance(reference[0], MessageStart) and isinstance(reference[-1], MessageStop)
    for cut in range(1, len(data)):
        assert decode_all(data, [cut]) == reference, f"split at byte {cut}"
    assert decode_all(data, list(range(1, len(data)))) == reference  # byte by byte
    crlf = data.replace(b"\n", b"\r\n")
    assert decode_all(crlf, list(range(3, len(crlf), 5))) == reference


def test_stream_decoder_reasoning_and_text():
    data = fake_stream({"input": "hi", "include": ["reasoning.encrypted_content"]}, "mock:reasoning,cached=7")
    s = summarize(decode_all(data))
    assert s["start"].id == "resp_test0002"
    thinking, text = s["blocks"]
    assert isinstance(thinking["block"], ThinkingBlock)
    assert thinking["thinking"].startswith("**Planning the answer**")
    assert thinking["signature"].startswith("rs_fake") and "|gAAAAAB" in thinking["signature"]
    assert text["text"] == "Hello world this is a mock completion"
    assert s["stop_reason"] == "end_turn" and s["stopped"]
    assert s["usage"].cache_read_tokens == 7 and s["usage"].reasoning_tokens > 0


def test_stream_decoder_tools_namespace():
    s = summarize(decode_all(STREAMS["fake_parallel_tools"]()))
    a, b = s["blocks"]
    assert (a["block"].id, a["block"].name, json.loads(a["json"])) == (
        "call_fake0001", "repo__list_dir", {"path": "src", "depth": 2})
    assert (b["block"].name, json.loads(b["json"])) == ("read_file", {"path": "README.md"})
    assert s["stop_reason"] == "tool_use"


def ev(kind: str, **data) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


CREATED = ev("response.created", sequence_number=0,
             response={"id": "resp_1", "model": "gpt-5", "status": "in_progress", "output": []})


def test_stream_decoder_failures():
    events = decode_all(CREATED + ev("response.failed", response={
        "id": "resp_1", "status": "failed",
        "error": {"code": "context_length_exceeded", "message": "Your input exceeds the context window."}}))
    assert isinstance(events[0], MessageStart)
    assert events[-1] == StreamError("context_length", "Your input exceeds the context window.", 400)

    events = decode_all(CREATED + ev("error", code="rate_limit_exceeded", message="Rate limit. Try again in 2s.",
                                     param=None, sequence_number=1))
    assert events[-1].type == "rate_limit" and events[-1].status == 429

    truncated = STREAMS["fake_reasoning_text"]()
    truncated = truncated[:truncated.index(b"event: response.completed")]
    events = decode_all(truncated)
    assert events[-1] == StreamError("bad_gateway", "upstream stream ended before response.completed", 502)
    assert not any(isinstance(e, MessageStop) for e in events)

    # junk, comments and unknown events are ignored; done-only text (no deltas) still arrives
    data = (b": keep-alive\n\n" + CREATED + b"data: not json\n\n" + ev("response.future_thing", x=1)
            + ev("response.output_item.added", output_index=0, item={"id": "msg_1", "type": "message",
                                                                     "role": "assistant", "content": []})
            + ev("response.output_text.done", item_id="msg_1", output_index=0, content_index=0, text="whole")
            + ev("response.output_item.done", output_index=0, item={"id": "msg_1", "type": "message", "content": [
                {"type": "output_text", "text": "whole"}]})
            + ev("response.completed", response={"id": "resp_1", "status": "completed", "output": [],
                                                 "usage": {"input_tokens": 3, "output_tokens": 1}}))
    s = summarize(decode_all(data))
    assert [b["text"] for b in s["blocks"]] == ["whole"] and s["usage"].input_tokens == 3
    assert s["stop_reason"] == "end_turn"


def test_stream_decoder_incomplete_and_multi_part_summary():
    data = (CREATED
            + ev("response.output_item.added", output_index=0, item={"id": "rs_9", "type": "reasoning", "summary": []})
            + ev("response.reasoning_summary_part.added", item_id="rs_9", output_index=0, summary_index=0,
                 part={"type": "summary_text", "text": ""})
            + ev("response.reasoning_summary_text.delta", item_id="rs_9", output_index=0, summary_index=0, delta="A")
            + ev("response.reasoning_summary_part.added", item_id="rs_9", output_index=0, summary_index=1,
                 part={"type": "summary_text", "text": ""})
            + ev("response.reasoning_summary_text.delta", item_id="rs_9", output_index=0, summary_index=1, delta="B")
            + ev("response.output_item.done", output_index=0, item={"id": "rs_9", "type": "reasoning", "summary": [
                {"type": "summary_text", "text": "A"}, {"type": "summary_text", "text": "B"}],
                "encrypted_content": "gAAAAABz"})
            + ev("response.incomplete", response={"id": "resp_1", "status": "incomplete", "output": [],
                                                  "incomplete_details": {"reason": "max_output_tokens"}}))
    s = summarize(decode_all(data))
    (thinking,) = s["blocks"]
    assert thinking["thinking"] == "A\n\nB" and thinking["signature"] == "rs_9|gAAAAABz"
    assert s["stop_reason"] == "max_tokens"


# --------------------------------------------------------------------------- stream encoder


def test_stream_encoder_event_sequence_is_sdk_valid():
    req = client_request(tools=PLAIN_TOOLS + [TOOLS_BODY[2]])
    events = canonical_stream()
    events[15] = BlockStart(3, ToolUseBlock(id="toolu_02def", name="read_file", input={}))
    data = encode_all(events, req)
    parsed = sse_events(data)
    validate_strict(parsed)
    assert [t for t, _ in parsed] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed"]
    assert b"\n\n: ping\n\n" in data  # Ping becomes an SSE comment (keep-alive), ignored by parsers
    created = parsed[0][1]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["model"] == "gpt-5-codex"
    final = parsed[-1][1]["response"]
    SDKResponse.model_validate(final)
    assert final["status"] == "completed" and final["id"] == "resp_msg_01XYZ" == created["id"]
    assert [o["type"] for o in final["output"]] == ["reasoning", "message", "function_call", "function_call"]
    assert final["output"][1]["content"][0]["text"] == "héllo 👋 wörld, ça va?"
    assert final["output"][2]["arguments"] == '{"path": "README.md"}'
    assert final["usage"]["input_tokens"] == 120 and final["usage"]["output_tokens"] == 42
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == 100
    # items in .done events are the ones accumulated into the final response
    dones = [d["item"] for t, d in parsed if t == "response.output_item.done"]
    assert dones == final["output"]


def test_stream_encoder_decoder_round_trip():
    req = client_request(tools=TOOLS_BODY[:2])
    original = summarize(canonical_stream())
    back = summarize(decode_all(encode_all(canonical_stream(), req)))
    assert back["start"].id == "resp_msg_01XYZ"
    assert back["stop_reason"] == "tool_use"
    assert [type(b["block"]) for b in back["blocks"]] == [type(b["block"]) for b in original["blocks"]]
    for got, want in zip(back["blocks"], original["blocks"]):
        assert (got["text"], got["thinking"], got["signature"]) == (want["text"], want["thinking"], want["signature"])
        if isinstance(want["block"], ToolUseBlock):
            assert (got["block"].id, got["block"].name) == (want["block"].id, want["block"].name)
            assert json.loads(got["json"]) == json.loads(want["json"])
    assert back["usage"] == Usage(input_tokens=120, output_tokens=42, cache_read_tokens=100, reasoning_tokens=10)


def test_stream_encoder_incomplete_error_and_redacted():
    req = client_request()
    data = encode_all([MessageStart(id="resp_abc", model="x"), BlockStart(0, TextBlock("")),
                       BlockDelta(0, "text", "cut"), MessageDelta("max_tokens", usage=Usage(output_tokens=5)),
                       MessageStop()], req)  # block left open: closed by the encoder
    parsed = sse_events(data)
    validate_strict(parsed)
    assert parsed[-1][0] == "response.incomplete"
    assert parsed[-1][1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert parsed[-2][0] == "response.output_item.done"

    data = encode_all([MessageStart(id="resp_abc", model="x"), BlockStart(0, RedactedThinkingBlock("b3BhcXVl")),
                       BlockStop(0), BlockStart(1, ToolUseBlock("t1", "read_file", {"path": "x"})), BlockStop(1),
                       StreamError("context_length", "prompt is too long", 400),
                       MessageStop()], req)
    parsed = sse_events(data)
    validate_strict(parsed)
    assert [t for t, _ in parsed][-2:] == ["error", "response.failed"]
    assert parsed[-2][1]["code"] == "context_length_exceeded" and parsed[-2][1]["message"] == "prompt is too long"
    failed = parsed[-1][1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "context_length_exceeded"
    # a tool call streamed with its input in the start block and no deltas still gets arguments
    assert failed["output"][1]["arguments"] == '{"path":"x"}'
    assert failed["output"][0]["encrypted_content"] == REDACTED + "b3BhcXVl"
    s = summarize(decode_all(data))
    assert s["blocks"][0]["signature"] == "b3BhcXVl"  # redacted data survives the round trip
    assert s["error"].type == "context_length"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("error, status, type_, code", [
    (InvalidRequest("bad 'input'"), 400, "invalid_request_error", None),
    (UnsupportedFeature("no files"), 400, "invalid_request_error", "unsupported_feature"),
    (GatewayError("context_length", "too long"), 400, "invalid_request_error", "context_length_exceeded"),
    (GatewayError("authentication", "bad key"), 401, "authentication_error", "invalid_api_key"),
    (GatewayError("permission", "nope"), 403, "permission_error", None),
    (GatewayError("not_found", "no model"), 404, "not_found_error", "model_not_found"),
    (GatewayError("rate_limit", "slow", retry_after=2), 429, "rate_limit_error", "rate_limit_exceeded"),
    (GatewayError("api_error", "boom"), 500, "server_error", "server_error"),
    (GatewayError("bad_gateway", "upstream died"), 502, "server_error", "bad_gateway"),
    (GatewayError("overloaded", "busy"), 503, "server_error", "server_is_overloaded"),
    (GatewayError("timeout", "slow upstream"), 504, "server_error", "timeout"),
])
def test_encode_error(error, status, type_, code):
    got_status, body = CODEC.encode_error(error)
    assert got_status == status
    assert body == {"error": {"message": error.message, "type": type_, "param": None, "code": code}}


@pytest.mark.parametrize("status, type_, retryable", [
    (400, "invalid_request", False), (401, "authentication", False), (404, "not_found", False),
    (429, "rate_limit", True), (500, "api_error", True), (502, "api_error", True), (503, "overloaded", True),
])
def test_decode_error_fake_bodies(status, type_, retryable):
    body = orjson.dumps(openai_error_body(status))
    err = CODEC.decode_error(status, body)
    assert (err.type, err.status, err.retryable) == (type_, status, retryable)
    assert err.message == openai_error_body(status)["error"]["message"]
    if status == 429:
        assert err.retry_after == 1.0 and err.code == "rate_limit_exceeded"


def test_decode_error_context_length_and_garbage():
    for body in (context_length_error(), chat_context_length_error()):
        err = CODEC.decode_error(400, orjson.dumps(body))
        assert err.type == "context_length" and err.status == 400 and not err.retryable
    err = CODEC.decode_error(400, b'{"error": {"message": "prompt is too long: 210000 tokens > 200000 maximum"}}')
    assert err.type == "context_length"
    err = CODEC.decode_error(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>")
    assert err.type == "api_error" and err.retryable and "502 Bad Gateway" in err.message
    for junk in (b"", b"not json {", b"[1,2]", b'"str"', b"\xff\xfe"):
        err = CODEC.decode_error(500, junk)
        assert err.type == "api_error" and err.message
    err = CODEC.decode_error(503, b'{"error": "overloaded, retry"}')
    assert err.type == "overloaded" and err.message == "overloaded, retry"


# --------------------------------------------------------------------------- the SDK against the fake


def test_sdk_against_fake_non_stream(fake):
    client = sdk(fake)
    resp = client.responses.create(model="mock:reasoning", input="hi", include=["reasoning.encrypted_content"])
    assert resp.output_text == "Hello world this is a mock completion"
    assert [o.type for o in resp.output] == ["reasoning", "message"]
    assert resp.output[0].encrypted_content.startswith("gAAAAAB")
    SDKResponse.model_validate(resp.to_dict())  # strict: every required field present
    assert client.responses.retrieve(resp.id).output_text == resp.output_text
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_missing")
    stored_before = len(fake.stored)
    client.responses.create(model="mock", input="hi", store=False)
    assert len(fake.stored) == stored_before
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="mock:status=429", input="hi")
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model="mock:context_length", input="hi")
    assert exc.value.code == "context_length_exceeded"
    # the fake's non-stream body decodes through the codec
    raw = httpx.post(fake.url + "/v1/responses", headers=AUTH,
                     json={"model": "mock:tools", "input": "x", "tools": PLAIN_TOOLS})
    decoded = CODEC.decode_response(raw.json())
    assert decoded.stop_reason == "tool_use" and decoded.content[0].name == "read_file"


def test_sdk_against_fake_stream(fake):
    client = sdk(fake)
    types = [e.type for e in client.responses.create(model="mock:reasoning,tokens=3", input="hi", stream=True)]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert types.count("response.output_text.delta") == 3
    assert "response.reasoning_summary_text.delta" in types

    with client.responses.stream(model="mock:parallel_tools", input="hi", tools=PLAIN_TOOLS * 2) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    calls = [o for o in final.output if o.type == "function_call"]
    assert [json.loads(c.arguments) for c in calls] == [{"path": "src", "depth": 2}, {"path": "README.md"}]

    # raw bytes of the fake validate strictly and decode through the codec
    with httpx.stream("POST", fake.url + "/v1/responses", headers=AUTH,
                      json={"model": "mock:reasoning,cached=5,no_usage", "input": "hi", "stream": True}) as r:
        data = r.read()
    validate_strict(sse_events(data))
    s = summarize(decode_all(data))
    assert s["blocks"][1]["text"] == "Hello world this is a mock completion" and s["usage"] == Usage()

    with httpx.stream("POST", fake.url + "/v1/responses", headers=AUTH,
                      json={"model": "mock:drop_after=4", "input": "hi", "stream": True}) as r:
        dec = CODEC.stream_decoder()
        events = []
        try:
            for chunk in r.iter_raw():
                events += dec.feed(chunk)
        except httpx.HTTPError:
            pass
        events += dec.close()
    assert isinstance(events[-1], StreamError) and events[-1].type == "bad_gateway"


AUTH = {"authorization": "Bearer sk-test"}  # the fake refuses keyless requests, as api.openai.com does


def test_fake_failure_behaviours_on_responses(fake):
    url = fake.url + "/v1/responses"
    r = httpx.post(url, headers=AUTH, json={"model": "mock:html_error", "input": "x"})
    err = CODEC.decode_error(r.status_code, r.content)
    assert r.status_code == 502 and err.type == "api_error" and err.retryable
    r = httpx.post(url, headers=AUTH, json={"model": "mock:status=503,retry_after=2", "input": "x"})
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    assert CODEC.decode_error(r.status_code, r.content).type == "overloaded"
    r = httpx.post(url, headers=AUTH, json={"model": "mock:garbage", "input": "x"})
    assert r.status_code == 200 and r.content == b"this is not json {"
    r = httpx.post(url, headers=AUTH, json={"model": "mock:length,tokens=2", "input": "x"})
    assert r.json()["status"] == "incomplete" and CODEC.decode_response(r.json()).stop_reason == "max_tokens"
    assert fake.last().path == "/v1/responses" and fake.last().body["model"] == "mock:length,tokens=2"


# --------------------------------------------------------------------------- the SDK against the encoder


def test_sdk_parses_encoder_stream(replay):
    req = client_request(tools=PLAIN_TOOLS)
    events = canonical_stream()
    events[15] = BlockStart(3, ToolUseBlock(id="toolu_02def", name="read_file", input={}))
    replay.reply = (200, "text/event-stream", encode_all(events, req))
    client = sdk(replay)

    got = list(client.responses.create(model="gpt-5-codex", input="hi", stream=True))
    assert [e.sequence_number for e in got] == list(range(len(got)))
    assert got[-1].type == "response.completed"
    assert got[-1].response.output_text == "héllo 👋 wörld, ça va?"

    # the SDK's accumulating helper asserts on indexes and item types as it goes
    with client.responses.stream(model="gpt-5-codex", input="hi", tools=PLAIN_TOOLS) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "héllo 👋 wörld, ça va?"
    assert [(c.call_id, json.loads(c.arguments)) for c in final.output if c.type == "function_call"] == [
        ("toolu_01abc", {"path": "README.md"}), ("toolu_02def", {"path": "src"})]
    assert final.usage.input_tokens_details.cached_tokens == 100

    replay.reply = (200, "text/event-stream", encode_all(
        [MessageStart(id="r", model="x"), StreamError("rate_limit", "Rate limit. Try again in 3s.", 429)], req))
    got = list(client.responses.create(model="gpt-5-codex", input="hi", stream=True))
    assert [e.type for e in got][-2:] == ["error", "response.failed"]
    assert got[-2].message == "Rate limit. Try again in 3s." and got[-1].response.error.code == "rate_limit_exceeded"


def test_sdk_parses_encoded_response_and_errors(replay):
    req = client_request(stream=False, tools=PLAIN_TOOLS)
    resp = Response(id="resp_x1", model="up", content=[TextBlock("done")], usage=Usage(input_tokens=3, output_tokens=1))
    replay.reply = (200, "application/json", orjson.dumps(CODEC.encode_response(resp, req)))
    client = sdk(replay)
    got = client.responses.create(model="gpt-5-codex", input="hi")
    assert got.id == "resp_x1" and got.output_text == "done" and got.usage.total_tokens == 4

    for error, exc_type in ((GatewayError("rate_limit", "slow down"), openai.RateLimitError),
                            (InvalidRequest("'input' must be a string"), openai.BadRequestError),
                            (GatewayError("authentication", "bad key"), openai.AuthenticationError),
                            (GatewayError("api_error", "boom"), openai.InternalServerError)):
        status, body = CODEC.encode_error(error)
        replay.reply = (status, "application/json", orjson.dumps(body))
        with pytest.raises(exc_type) as exc:
            client.responses.create(model="gpt-5-codex", input="hi")
        assert exc.value.message.endswith(error.message) or error.message in str(exc.value)


def test_codec_registration():
    assert isinstance(CODEC, OpenAIResponsesCodec) and CODEC.name == "openai_responses"
    assert CODEC.usage_from_response({"id": "r", "output": [], "status": "completed",
                                      "usage": {"input_tokens": 5, "output_tokens": 2,
                                                "input_tokens_details": {"cached_tokens": 4}}}) == Usage(
        input_tokens=5, output_tokens=2, cache_read_tokens=4)


def test_a_provider_run_web_search_becomes_a_web_search_call_item_the_sdk_parses():
    from providers.codecs.canonical import ServerToolBlock

    call = ServerToolBlock("srvtoolu_01ABC", "web_search", {"query": "junction"})
    result = ServerToolBlock("srvtoolu_01ABC", "web_search", result=[{"type": "web_search_result", "url": "u"}])
    request = Request(model="m", messages=[], source_format="openai_responses")
    out = CODEC.encode_response(Response(id="msg_1", model="m", content=[call, result, TextBlock("found")],
                                         usage=Usage(input_tokens=5, output_tokens=2)), request)
    assert [i["type"] for i in out["output"]] == ["web_search_call", "message"]  # the result is in the text
    assert out["output"][0]["action"] == {"type": "search", "query": "junction"}
    assert SDKResponse.model_validate(out).output[0].action.query == "junction"
    encoder = CODEC.stream_encoder(request)
    stream = b"".join(encoder.encode(e) for e in [
        MessageStart("msg_1", "m"), BlockStart(0, call), BlockStop(0), BlockStart(1, result), BlockStop(1),
        BlockStart(2, TextBlock("")), BlockDelta(2, "text", "found"), BlockStop(2),
        MessageDelta("end_turn", usage=Usage(input_tokens=5, output_tokens=2)), MessageStop()])
    events = [orjson.loads(line[6:]) for line in stream.split(b"\n") if line.startswith(b"data: ")]
    for event in events:  # every event is one the official SDK knows, with the fields it requires
        EVENT_MODELS[event["type"]].model_validate(event)
    kinds = [e["type"] for e in events]
    assert kinds[2:8] == ["response.output_item.added", "response.web_search_call.in_progress",
                          "response.web_search_call.searching", "response.web_search_call.completed",
                          "response.output_item.done", "response.output_item.added"]
    final = SDKResponse.model_validate(events[-1]["response"])
    assert [i.type for i in final.output] == ["web_search_call", "message"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
