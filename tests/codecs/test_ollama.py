"""Ollama native codec: request both ways (Goose's body included), responses,
NDJSON streams at every byte split, encoder -> decoder round trip, errors, and
the fake Ollama over a real loopback socket."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from providers.codecs import get_codec
from providers.codecs.canonical import (
    BlockDelta,
    BlockStart,
    BlockStop,
    ImageBlock,
    Message,
    MessageDelta,
    MessageStart,
    MessageStop,
    Reasoning,
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
from providers.codecs.errors import GatewayError, UnsupportedFeature
from providers.codecs.ollama import CODEC, guess_image_type
from tests.fakes.ollama import FakeOllama

GOOSE_PATH = str(Path(__file__).resolve().parents[1] / "fixtures" / "agents"
                 / "goose" / "ollama-chat.json")

# The Goose 1.31.0 body (GOOSE_PROVIDER=ollama), kept here so the test does not depend on
# the shared folder; test_goose_fixture_matches_shared_copy keeps the two in sync.
GOOSE_BODY = {
    "model": "qwen3-coder:30b",
    "messages": [
        {"role": "system", "content": "You are a general-purpose AI agent called goose, created by AAIF (Agentic AI "
                                      "Foundation).\ngoose is being developed as an open-source software project."},
        {"role": "user", "content": "What files are in src/ and how many lines does main.rs have?\n<info-msg>\nIt is "
                                    "currently 2026-04-22 14:05:00\nWorking directory: /home/dev/proj\nContext: "
                                    "~3k/128k tokens used (2%)\n\n</info-msg>"},
        {"role": "assistant", "content": "I'll look at the directory tree first.",
         "tool_calls": [{"id": "call_x7p2k9ab", "type": "function",
                         "function": {"name": "tree", "arguments": "{\"path\":\"src\",\"depth\":2}"}}]},
        {"role": "tool", "content": "src/\n  lib.rs [310]\n  main.rs [42]\n  util/\n    mod.rs [18]",
         "tool_call_id": "call_x7p2k9ab"},
    ],
    "tools": [
        {"type": "function", "function": {
            "name": "shell", "description": "Execute a shell command in the current dir.",
            "parameters": {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "ShellParams",
                           "type": "object",
                           "properties": {"command": {"type": "string"},
                                          "timeout_secs": {"type": ["integer", "null"], "format": "uint64",
                                                           "minimum": 0, "default": None}},
                           "required": ["command"]}}},
        {"type": "function", "function": {
            "name": "tree", "description": "List a directory tree with line counts.",
            "parameters": {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "TreeParams",
                           "type": "object",
                           "properties": {"path": {"type": "string"},
                                          "depth": {"type": "integer", "format": "uint32", "minimum": 0,
                                                    "default": 2}},
                           "required": ["path"]}}},
    ],
    "stream": True,
    "stream_options": {"include_usage": True},
    "options": {"num_predict": 4096, "num_ctx": 32768},
}

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 24).decode()
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 24).decode()
GIF = base64.b64encode(b"GIF89a" + b"\x00" * 24).decode()
WEBP = base64.b64encode(b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 16).decode()


def goose_body() -> dict:
    with open(GOOSE_PATH) as f:
        return json.load(f)


# --------------------------------------------------------------------------- requests


def test_registry_and_attributes():
    assert get_codec("ollama") is CODEC
    assert CODEC.name == "ollama"
    assert CODEC.stream_media_type == "application/x-ndjson"


def test_goose_fixture_matches_shared_copy():
    shared = goose_body()
    # Same structure; the shared copy has the full (long) prompt and tool descriptions.
    assert shared["model"] == GOOSE_BODY["model"]
    assert shared["messages"][1:] == GOOSE_BODY["messages"][1:]
    assert [t["function"]["name"] for t in shared["tools"]] == ["shell", "tree"]
    assert [t["function"]["parameters"] for t in shared["tools"]] == [t["function"]["parameters"] for t in GOOSE_BODY["tools"]]
    assert {k: v for k, v in shared.items() if k not in ("messages", "tools")} == \
           {k: v for k, v in GOOSE_BODY.items() if k not in ("messages", "tools")}


def test_goose_body_decodes():
    body = goose_body()
    req = CODEC.decode_request(body)
    assert req.model == "qwen3-coder:30b"
    assert req.source_format == "ollama"
    assert req.stream is True and req.stream_include_usage is True
    assert len(req.system) == 1 and req.system[0].text.startswith("You are a general-purpose AI agent called goose")
    assert [m.role for m in req.messages] == ["user", "assistant", "user"]
    assert req.messages[0].content == [TextBlock(body["messages"][1]["content"])]
    text, call = req.messages[1].content
    assert text == TextBlock("I'll look at the directory tree first.")
    # Goose (OpenAI-shaped) carries ids and string arguments: both honoured.
    assert call == ToolUseBlock(id="call_x7p2k9ab", name="tree", input={"path": "src", "depth": 2})
    (result,) = req.messages[2].content
    assert isinstance(result, ToolResultBlock) and result.tool_use_id == "call_x7p2k9ab"
    assert result.content == [TextBlock(body["messages"][3]["content"])]
    assert [t.name for t in req.tools] == ["shell", "tree"]
    assert req.tools[1].input_schema == body["tools"][1]["function"]["parameters"]
    assert req.max_tokens == 4096
    assert req.extra == {"options": {"num_ctx": 32768}}


def test_goose_body_reencodes_as_native_ollama():
    body = goose_body()
    out = CODEC.encode_request(CODEC.decode_request(body))
    assert out["model"] == body["model"]
    assert out["stream"] is True
    assert "stream_options" not in out  # not part of /api/chat
    assert out["options"] == {"num_ctx": 32768, "num_predict": 4096}
    assert out["tools"] == [{"type": "function", "function": {
        "name": t["function"]["name"], "description": t["function"]["description"],
        "parameters": t["function"]["parameters"]}} for t in body["tools"]]
    system, user, assistant, tool = out["messages"]
    assert system == {"role": "system", "content": body["messages"][0]["content"]}
    assert user == {"role": "user", "content": body["messages"][1]["content"]}
    assert assistant == {"role": "assistant", "content": "I'll look at the directory tree first.",
                         "tool_calls": [{"function": {"name": "tree", "arguments": {"path": "src", "depth": 2}}}]}
    assert tool == {"role": "tool", "content": body["messages"][3]["content"], "tool_name": "tree"}

    # And the native body decodes again: positional ids, results matched back by order.
    again = CODEC.decode_request(out)
    assert again.messages[1].content[1] == ToolUseBlock(id="call_0", name="tree", input={"path": "src", "depth": 2})
    assert again.messages[2].content[0].tool_use_id == "call_0"
    assert again.max_tokens == 4096 and again.extra == {"options": {"num_ctx": 32768}}


def test_native_tool_results_matched_by_name_then_order():
    body = {"model": "llama3.2", "messages": [
        {"role": "user", "content": "read both"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "read", "arguments": {"path": "a"}}},
            {"function": {"name": "stat", "arguments": {"path": "b"}}}]},
        {"role": "tool", "content": "B stat", "tool_name": "stat"},
        {"role": "tool", "content": "A text"},
        {"role": "assistant", "content": "again", "tool_calls": [{"function": {"name": "read", "arguments": {}}}]},
        {"role": "tool", "content": "A again"},
        {"role": "tool", "content": "orphan"},
    ]}
    req = CODEC.decode_request(body)
    roles = [m.role for m in req.messages]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert [b.id for b in req.messages[1].content] == ["call_0", "call_1"]
    results = req.messages[2].content
    assert [(r.tool_use_id, r.content[0].text) for r in results] == [("call_1", "B stat"), ("call_0", "A text")]
    assert req.messages[3].content[1].id == "call_2"
    last = req.messages[4].content
    assert last[0].tool_use_id == "call_2"
    # A tool message with nothing left to answer is kept as text, not as a dangling tool_result.
    assert isinstance(last[1], TextBlock) and "orphan" in last[1].text


def test_stream_defaults_to_true_and_is_always_explicit_upstream():
    req = CODEC.decode_request({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]})
    assert req.stream is True
    assert CODEC.decode_request({"model": "m", "messages": [], "stream": False}).stream is False
    req.stream = False
    assert CODEC.encode_request(req)["stream"] is False
    cross = Request(model="m", messages=[Message("user", [TextBlock("hi")])])  # from another format
    assert CODEC.encode_request(cross)["stream"] is False


def test_think_format_options_keep_alive():
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    body = {"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}], "think": "high",
            "format": schema, "keep_alive": "10m", "stream": False,
            "options": {"temperature": 0.2, "top_p": 0.9, "stop": ["</s>"], "num_predict": 256, "seed": 7,
                        "num_ctx": 8192, "top_k": 20}}
    req = CODEC.decode_request(body)
    assert req.reasoning == Reasoning(enabled=True, effort="high")
    assert req.response_format == {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    assert (req.temperature, req.top_p, req.stop, req.max_tokens) == (0.2, 0.9, ["</s>"], 256)
    assert req.extra == {"keep_alive": "10m", "options": {"seed": 7, "num_ctx": 8192, "top_k": 20}}
    out = CODEC.encode_request(req)
    assert out["think"] == "high" and out["format"] == schema and out["keep_alive"] == "10m"
    assert out["options"] == body["options"]

    assert CODEC.decode_request(dict(body, think=True)).reasoning == Reasoning(enabled=True)
    off = CODEC.decode_request(dict(body, think=False, format="json"))
    assert off.reasoning.enabled is False and off.response_format == {"type": "json_object"}
    out = CODEC.encode_request(off)
    assert out["think"] is False and out["format"] == "json"
    # num_predict -1 (unlimited) has no canonical form: kept as an option.
    inf = CODEC.decode_request(dict(body, options={"num_predict": -1}))
    assert inf.max_tokens is None and inf.extra["options"] == {"num_predict": -1}


def test_cross_format_request_encoding():
    req = Request(
        model="qwen2.5-coder:14b",
        system=[TextBlock("sys one"), TextBlock("sys two", cache_control={"type": "ephemeral"})],
        messages=[
            Message("user", [TextBlock("look"), ImageBlock(media_type="image/png", data=PNG)]),
            Message("assistant", [ThinkingBlock("hmm", signature="sig"), TextBlock("calling"),
                                  ToolUseBlock(id="toolu_1", name="read", input={"path": "x"})]),
            Message("user", [ToolResultBlock("toolu_1", [TextBlock("boom")], is_error=True), TextBlock("next?")]),
        ],
        tools=[Tool("read", "Read a file", {"type": "object", "properties": {"path": {"type": "string"}}})],
        max_tokens=1000, temperature=0.0, stop=["END"], stream=True,
        reasoning=Reasoning(enabled=True, budget_tokens=2048),
        extra={"anthropic_only": True}, source_format="anthropic_messages",
    )
    out = CODEC.encode_request(req)
    assert "anthropic_only" not in out  # extras of another format are not forwarded
    assert out["think"] is True
    assert out["options"] == {"num_predict": 1000, "temperature": 0.0, "stop": ["END"]}
    assert out["messages"] == [
        {"role": "system", "content": "sys one\n\nsys two"},
        {"role": "user", "content": "look", "images": [PNG]},
        {"role": "assistant", "content": "calling", "thinking": "hmm",
         "tool_calls": [{"function": {"name": "read", "arguments": {"path": "x"}}}]},
        {"role": "tool", "content": "Error: boom", "tool_name": "read"},
        {"role": "user", "content": "next?"},
    ]
    assert out["tools"][0]["function"]["parameters"]["properties"] == {"path": {"type": "string"}}
    # tool_choice none = do not offer the tools.
    req.tool_choice = ToolChoice("none")
    assert "tools" not in CODEC.encode_request(req)


def test_images():
    assert guess_image_type(PNG) == "image/png"
    assert guess_image_type(JPEG) == "image/jpeg"
    assert guess_image_type(GIF) == "image/gif"
    assert guess_image_type(WEBP) == "image/webp"
    req = CODEC.decode_request({"model": "llava", "messages": [
        {"role": "user", "content": "what is this?", "images": [JPEG, PNG]}]})
    assert req.messages[0].content == [ImageBlock(media_type="image/jpeg", data=JPEG),
                                       ImageBlock(media_type="image/png", data=PNG), TextBlock("what is this?")]
    url = Request(model="llava", messages=[Message("user", [ImageBlock(url="https://example.com/cat.png")])])
    with pytest.raises(UnsupportedFeature):
        CODEC.encode_request(url)
    data_url = Request(model="llava", messages=[Message("user", [ImageBlock(url="data:image/png;base64," + PNG)])])
    assert CODEC.encode_request(data_url)["messages"] == [{"role": "user", "content": "", "images": [PNG]}]


# --------------------------------------------------------------------------- responses


def test_decode_response():
    body = {"model": "llama3.2", "created_at": "2024-07-22T20:33:28.123648Z",
            "message": {"role": "assistant", "content": "", "thinking": "weather?",
                        "tool_calls": [{"function": {"name": "get_current_weather",
                                                     "arguments": {"format": "celsius", "location": "Paris, FR"}}}]},
            "done_reason": "stop", "done": True, "total_duration": 885095291, "load_duration": 3753500,
            "prompt_eval_count": 122, "prompt_eval_duration": 328493000, "eval_count": 33, "eval_duration": 552222000}
    resp = CODEC.decode_response(body)
    assert resp.model == "llama3.2"
    assert resp.stop_reason == "tool_use"
    assert resp.usage == Usage(input_tokens=122, output_tokens=33)
    thinking, call = resp.content
    assert thinking == ThinkingBlock("weather?")
    assert call.name == "get_current_weather" and call.input == {"format": "celsius", "location": "Paris, FR"}
    assert call.id.startswith("call_")
    assert CODEC.usage_from_response(body) == Usage(input_tokens=122, output_tokens=33)

    long = CODEC.decode_response({"model": "m", "message": {"role": "assistant", "content": "cut"},
                                  "done": True, "done_reason": "length", "eval_count": 5})
    assert long.stop_reason == "max_tokens" and long.content == [TextBlock("cut")]
    with pytest.raises(GatewayError):
        CODEC.decode_response({"unexpected": True})


def test_encode_response():
    req = Request(model="qwen2.5-coder:14b", messages=[])
    resp = Response(id="x", model="upstream", content=[
        ThinkingBlock("plan"), TextBlock("ok"), ToolUseBlock("toolu_9", "read", {"path": "a"})],
        stop_reason="tool_use", usage=Usage(input_tokens=10, output_tokens=4))
    out = CODEC.encode_response(resp, req)
    assert out["model"] == "qwen2.5-coder:14b" and out["done"] is True and out["done_reason"] == "stop"
    assert out["created_at"].endswith("Z")
    assert out["message"] == {"role": "assistant", "content": "ok", "thinking": "plan",
                              "tool_calls": [{"function": {"name": "read", "arguments": {"path": "a"}}}]}
    assert (out["prompt_eval_count"], out["eval_count"]) == (10, 4)
    assert CODEC.decode_response(out).content[2].input == {"path": "a"}
    resp.stop_reason = "max_tokens"
    assert CODEC.encode_response(resp, req)["done_reason"] == "length"


# --------------------------------------------------------------------------- streams


def ndjson(*objs) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


STREAM = ndjson(
    {"model": "qwen3:8b", "created_at": "2025-05-27T22:54:57.641643Z",
     "message": {"role": "assistant", "content": "", "thinking": "Let me"}, "done": False},
    {"model": "qwen3:8b", "created_at": "2025-05-27T22:54:57.7Z",
     "message": {"role": "assistant", "content": "", "thinking": " think ü"}, "done": False},
    {"model": "qwen3:8b", "created_at": "2025-05-27T22:54:57.8Z",
     "message": {"role": "assistant", "content": "Hé"}, "done": False},
    {"model": "qwen3:8b", "created_at": "2025-05-27T22:54:57.9Z",
     "message": {"role": "assistant", "content": " there"}, "done": False},
    {"model": "qwen3:8b", "created_at": "2025-05-27T22:54:58Z",
     "message": {"role": "assistant", "content": "", "tool_calls": [
         {"function": {"name": "get_current_weather", "arguments": {"location": "Toronto", "unit": "°C"}}},
         {"function": {"name": "read", "arguments": {}}}]}, "done": False},
    {"model": "qwen3:8b", "created_at": "2025-05-27T22:54:58.1Z", "message": {"role": "assistant", "content": ""},
     "done_reason": "stop", "done": True, "total_duration": 1, "load_duration": 1, "prompt_eval_count": 313,
     "prompt_eval_duration": 1, "eval_count": 28, "eval_duration": 1},
)


def normalise(events):
    """Replace random ids so event lists can be compared."""
    out = []
    for e in events:
        if isinstance(e, MessageStart):
            e = MessageStart(id="ID", model=e.model, usage=e.usage)
        elif isinstance(e, BlockStart) and isinstance(e.block, ToolUseBlock):
            e = BlockStart(e.index, ToolUseBlock(id="ID", name=e.block.name, input=e.block.input))
        out.append(e)
    return out


def merge_deltas(events):
    """Adjacent deltas of one block joined (chunking may split where lines do not)."""
    out = []
    for e in events:
        if isinstance(e, BlockDelta) and out and isinstance(out[-1], BlockDelta) \
                and (out[-1].index, out[-1].kind) == (e.index, e.kind):
            out[-1] = BlockDelta(e.index, e.kind, out[-1].value + e.value)
        else:
            out.append(e)
    return out


def decode_all(chunks, codec=CODEC):
    dec = codec.stream_decoder()
    events = []
    for c in chunks:
        events += dec.feed(c)
    return events + dec.close()


def test_stream_decode_reference():
    events = normalise(decode_all([STREAM]))
    assert events == [
        MessageStart(id="ID", model="qwen3:8b"),
        BlockStart(0, ThinkingBlock("")),
        BlockDelta(0, "thinking", "Let me"),
        BlockDelta(0, "thinking", " think ü"),
        BlockStop(0),
        BlockStart(1, TextBlock("")),
        BlockDelta(1, "text", "Hé"),
        BlockDelta(1, "text", " there"),
        BlockStop(1),
        BlockStart(2, ToolUseBlock(id="ID", name="get_current_weather", input={})),
        BlockDelta(2, "json", json.dumps({"location": "Toronto", "unit": "°C"}, separators=(",", ":"),
                                         ensure_ascii=False)),
        BlockStop(2),
        BlockStart(3, ToolUseBlock(id="ID", name="read", input={})),
        BlockDelta(3, "json", "{}"),
        BlockStop(3),
        MessageDelta(stop_reason="tool_use", usage=Usage(input_tokens=313, output_tokens=28)),
        MessageStop(),
    ]
    ids = [e.block.id for e in decode_all([STREAM]) if isinstance(e, BlockStart) and isinstance(e.block, ToolUseBlock)]
    assert len(set(ids)) == 2


def test_stream_decode_every_byte_split():
    reference = normalise(decode_all([STREAM]))
    for cut in range(1, len(STREAM)):
        assert normalise(decode_all([STREAM[:cut], STREAM[cut:]])) == reference, cut
    for a in range(0, len(STREAM), 37):  # three pieces, coarse grid
        for b in range(a + 1, len(STREAM), 53):
            assert normalise(decode_all([STREAM[:a], STREAM[a:b], STREAM[b:]])) == reference
    assert normalise(decode_all([STREAM[i:i + 1] for i in range(len(STREAM))])) == reference
    # CRLF line ends and a final line without newline are fine too.
    crlf = STREAM.replace(b"\n", b"\r\n")
    assert normalise(decode_all([crlf])) == reference
    assert normalise(decode_all([STREAM.rstrip(b"\n")])) == reference


def test_stream_errors():
    start = ndjson({"model": "m", "created_at": "t", "message": {"role": "assistant", "content": "Hi"}, "done": False})
    events = decode_all([start + ndjson({"error": "an error was encountered while running the model"})])
    assert isinstance(events[-1], StreamError) and events[-1].message == "an error was encountered while running the model"
    assert isinstance(events[0], MessageStart) and events[2] == BlockDelta(0, "text", "Hi")

    cut = decode_all([start])
    assert isinstance(cut[-1], StreamError) and cut[-1].type == "bad_gateway" and cut[-1].status == 502
    garbage = decode_all([b"<html>502</html>\n"])
    assert len(garbage) == 1 and garbage[0].type == "bad_gateway"
    empty = decode_all([b""])
    assert len(empty) == 1 and isinstance(empty[0], StreamError) and empty[0].status == 502

    # Nothing after done is decoded, and close() adds nothing.
    dec = CODEC.stream_decoder()
    done = dec.feed(STREAM)
    assert isinstance(done[-1], MessageStop)
    assert dec.feed(start) == [] and dec.close() == []

    length = decode_all([start + ndjson({"model": "m", "message": {"role": "assistant", "content": ""},
                                         "done": True, "done_reason": "length", "eval_count": 1})])
    assert length[-2].stop_reason == "max_tokens"


def canonical_stream():
    return [
        MessageStart(id="msg_1", model="claude", usage=Usage(input_tokens=50)),
        BlockStart(0, ThinkingBlock("")),
        BlockDelta(0, "thinking", "I should "),
        BlockDelta(0, "thinking", "read it."),
        BlockDelta(0, "signature", "sig=="),
        BlockStop(0),
        BlockStart(1, TextBlock("")),
        BlockDelta(1, "text", "Reading "),
        BlockDelta(1, "text", "the file."),
        BlockStop(1),
        BlockStart(2, ToolUseBlock(id="toolu_1", name="read", input={})),
        BlockDelta(2, "json", '{"path": '),
        BlockDelta(2, "json", '"src/main.rs", "lines": [1, 2]}'),
        BlockStop(2),
        BlockStart(3, ToolUseBlock(id="toolu_2", name="broken", input={})),
        BlockDelta(3, "json", '{"path": "tru'),
        BlockStop(3),
        MessageDelta(stop_reason="tool_use", usage=Usage(output_tokens=42)),
        MessageStop(),
    ]


def test_stream_encoder_lines():
    enc = CODEC.stream_encoder(Request(model="qwen2.5-coder:14b", messages=[]))
    raw = b"".join(enc.encode(e) for e in canonical_stream()) + enc.close()
    assert raw.endswith(b"\n")
    lines = [json.loads(line) for line in raw.split(b"\n") if line]
    assert all(set(line) >= {"model", "created_at", "message", "done"} for line in lines)
    assert all(line["model"] == "qwen2.5-coder:14b" and line["created_at"].endswith("Z") for line in lines)
    assert [line["done"] for line in lines] == [False] * 6 + [True]
    assert [line["message"].get("thinking") for line in lines[:2]] == ["I should ", "read it."]
    assert [line["message"]["content"] for line in lines[2:4]] == ["Reading ", "the file."]
    assert lines[4]["message"]["tool_calls"] == [{"function": {"name": "read",
                                                               "arguments": {"path": "src/main.rs", "lines": [1, 2]}}}]
    assert lines[5]["message"]["tool_calls"] == [{"function": {"name": "broken", "arguments": {}}}]
    final = lines[-1]
    assert final["done_reason"] == "stop"
    assert (final["prompt_eval_count"], final["eval_count"]) == (50, 42)
    for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(final[key], int) and final[key] >= 0

    err = CODEC.stream_encoder(Request(model="m", messages=[]))
    out = err.encode(BlockDelta(0, "text", "partial")) + err.encode(StreamError("overloaded", "upstream busy", 503))
    assert json.loads(out.splitlines()[-1]) == {"error": "upstream busy"}
    assert err.encode(MessageStop()) == b""


def test_encoder_decoder_round_trip():
    enc = CODEC.stream_encoder(Request(model="qwen2.5-coder:14b", messages=[]))
    raw = b"".join(enc.encode(e) for e in canonical_stream()) + enc.close()
    for chunks in ([raw], [raw[i:i + 7] for i in range(0, len(raw), 7)]):
        events = merge_deltas(normalise(decode_all(chunks)))
        assert events == [
            MessageStart(id="ID", model="qwen2.5-coder:14b"),
            BlockStart(0, ThinkingBlock("")),
            BlockDelta(0, "thinking", "I should read it."),
            BlockStop(0),
            BlockStart(1, TextBlock("")),
            BlockDelta(1, "text", "Reading the file."),
            BlockStop(1),
            BlockStart(2, ToolUseBlock(id="ID", name="read", input={})),
            BlockDelta(2, "json", '{"path":"src/main.rs","lines":[1,2]}'),
            BlockStop(2),
            BlockStart(3, ToolUseBlock(id="ID", name="broken", input={})),
            BlockDelta(3, "json", "{}"),
            BlockStop(3),
            MessageDelta(stop_reason="tool_use", usage=Usage(input_tokens=50, output_tokens=42)),
            MessageStop(),
        ]


# --------------------------------------------------------------------------- errors


def test_errors():
    assert CODEC.encode_error(GatewayError("rate_limit", "slow down", 429)) == (429, {"error": "slow down"})
    nf = CODEC.decode_error(404, b'{"error":"model \\"qwen9:1b\\" not found, try pulling it first"}')
    assert nf.type == "not_found" and nf.status == 404 and "qwen9:1b" in nf.message and not nf.retryable
    busy = CODEC.decode_error(503, b'{"error":"server busy, please try again.  maximum pending requests exceeded"}')
    assert busy.type == "overloaded" and busy.retryable and "server busy" in busy.message
    openai_shape = CODEC.decode_error(400, b'{"error":{"message":"invalid tool","type":"invalid_request_error"}}')
    assert openai_shape.type == "invalid_request" and openai_shape.message == "invalid tool"
    for junk in (b"", b"<html>bad gateway</html>", b"\xff\xfe\x00", b"[1,2]", b'{"error": null}'):
        err = CODEC.decode_error(502, junk)
        assert isinstance(err, GatewayError) and err.status == 502 and err.retryable and err.message


# --------------------------------------------------------------------------- the fake, over loopback


@pytest.fixture(scope="module")
def ollama():
    server = FakeOllama().start()
    yield server
    server.stop()


def chat_stream(server, body):
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", server.url + "/api/chat", json=body) as r:
            assert r.headers["content-type"].startswith("application/x-ndjson")
            dec = CODEC.stream_decoder()
            events = []
            try:
                for chunk in r.iter_raw():
                    events += dec.feed(chunk)
            except httpx.HTTPError:
                pass  # a dropped connection: close() must report it
            return events + dec.close()


def test_fake_stream_with_thinking_and_tools(ollama):
    body = CODEC.encode_request(CODEC.decode_request(goose_body()))
    body["model"] = "qwen3-coder:30b#tools,thinking"
    events = chat_stream(ollama, body)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["MessageStart", "BlockStart", "BlockDelta", "BlockDelta", "BlockDelta", "BlockStop",
                     "BlockStart", "BlockDelta", "BlockStop", "MessageDelta", "MessageStop"]
    assert events[6].block.name == "shell" and json.loads(events[7].value) == {"path": "src", "depth": 2}
    assert events[-2].stop_reason == "tool_use" and events[-2].usage.input_tokens > 0
    sent = ollama.last().body
    assert sent["messages"][3] == {"role": "tool", "content": goose_body()["messages"][3]["content"],
                                   "tool_name": "tree"}


def test_fake_default_is_stream_and_non_stream_works(ollama):
    text = chat_stream(ollama, {"model": "llama3.2:latest", "messages": [{"role": "user", "content": "hi"}]})
    assert "".join(e.value for e in text if isinstance(e, BlockDelta)) == "Hello world this is a mock completion"
    assert text[-2].stop_reason == "end_turn" and isinstance(text[-1], MessageStop)
    r = httpx.post(ollama.url + "/api/chat", json={"model": "llama3.2:latest#length", "stream": False,
                                                   "messages": [{"role": "user", "content": "hi"}]})
    resp = CODEC.decode_response(r.json())
    assert resp.stop_reason == "max_tokens" and resp.content == [TextBlock("Hello world this is a mock completion")]
    assert resp.usage.output_tokens == 7


def test_fake_failures(ollama):
    r = httpx.post(ollama.url + "/api/chat", json={"model": "qwen2.5-coder:14b#status=404", "messages": []})
    err = CODEC.decode_error(r.status_code, r.content)
    assert err.type == "not_found" and 'model "qwen2.5-coder:14b" not found' in err.message
    r = httpx.post(ollama.url + "/api/chat", json={"model": "m#status=500", "messages": []})
    assert CODEC.decode_error(r.status_code, r.content).retryable
    dropped = chat_stream(ollama, {"model": "m#drop_after=3", "messages": [{"role": "user", "content": "x"}]})
    assert isinstance(dropped[-1], StreamError) and dropped[-1].type == "bad_gateway"
    assert sum(isinstance(e, BlockDelta) for e in dropped) == 3
    mid = chat_stream(ollama, {"model": "m#mid_error=2", "messages": [{"role": "user", "content": "x"}]})
    assert isinstance(mid[-1], StreamError) and "unexpected EOF" in mid[-1].message
    r = httpx.post(ollama.url + "/api/chat", json={"model": "m#garbage", "messages": []})
    dec = CODEC.stream_decoder()
    events = dec.feed(r.content) + dec.close()
    assert isinstance(events[-1], StreamError)


def test_fake_side_endpoints(ollama):
    tags = httpx.get(ollama.url + "/api/tags").json()
    names = [m["name"] for m in tags["models"]]
    assert "qwen2.5-coder:14b" in names
    first = tags["models"][0]
    assert set(first) == {"name", "model", "modified_at", "size", "digest", "details"}
    assert first["details"]["format"] == "gguf" and len(first["digest"]) == 64
    emb = httpx.post(ollama.url + "/api/embed", json={"model": "all-minilm", "input": ["a", "b"]}).json()
    assert emb["model"] == "all-minilm" and len(emb["embeddings"]) == 2 and emb["prompt_eval_count"] >= 2
    assert httpx.get(ollama.url + "/api/version").json() == {"version": FakeOllama.version}
