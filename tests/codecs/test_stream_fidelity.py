"""Upstream stream shapes the real APIs send and every client stream encoder must survive:
parallel tool calls whose argument fragments interleave (index 0, 1, 0, 1 ...), split at
every byte. The same test runs for every codec that can be a front door."""

from __future__ import annotations

import json

import orjson
import pytest

from providers.codecs import get_codec
from providers.codecs.canonical import (
    BlockDelta,
    BlockStart,
    BlockStop,
    Message,
    MessageStop,
    Request,
    TextBlock,
    ToolUseBlock,
)
from tests.fakes.openai import chunk_bytes, tool_call_deltas

CLIENT_FORMATS = ["openai_chat", "anthropic_messages", "openai_responses", "ollama"]
CALLS = [
    {"id": "call_a", "type": "function", "function": {"name": "list_dir",
                                                      "arguments": json.dumps({"path": "src", "depth": 2})}},
    {"id": "call_b", "type": "function", "function": {"name": "read_file",
                                                      "arguments": json.dumps({"path": "README.md"})}},
    {"id": "call_c", "type": "function", "function": {"name": "grep",
                                                      "arguments": json.dumps({"pattern": "TODO", "n": 3})}},
]


def openai_stream(calls, interleave: bool) -> bytes:
    base = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}

    def chunk(delta, finish=None):
        return chunk_bytes(dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": finish}]))

    out = [chunk({"role": "assistant", "content": None})]
    out += [chunk(d) for d in tool_call_deltas(calls, interleave=interleave, step=4)]
    out.append(chunk({}, "tool_calls"))
    out.append(chunk_bytes(dict(base, choices=[], usage={"prompt_tokens": 10, "completion_tokens": 20,
                                                         "total_tokens": 30})))
    return b"".join(out) + b"data: [DONE]\n\n"


def canonical_events(data: bytes, step: int | None = None) -> list:
    decoder = get_codec("openai_chat").stream_decoder()
    events = []
    pieces = [data] if step is None else [data[i:i + step] for i in range(0, len(data), step)]
    for piece in pieces:
        events += decoder.feed(piece)
    return events + decoder.close()


def client_request(fmt: str) -> Request:
    return Request(model="alias", messages=[Message("user", [TextBlock("hi")])], stream=True,
                   source_format=fmt)


def reencode(fmt: str, events) -> bytes:
    encoder = get_codec(fmt).stream_encoder(client_request(fmt))
    return b"".join(encoder.encode(ev) for ev in events) + encoder.close()


def tool_inputs(fmt: str, wire: bytes) -> dict[str, dict]:
    """What a client of `fmt` reads back: tool name -> parsed input, by the codec's own decoder
    (which follows the format's rules for which block a delta belongs to)."""
    events = get_codec(fmt).stream_decoder().feed(wire)
    names, args, closed = {}, {}, set()
    for ev in events:
        if isinstance(ev, BlockStart) and isinstance(ev.block, ToolUseBlock):
            names[ev.index] = ev.block.name
            args[ev.index] = orjson.dumps(ev.block.input).decode() if ev.block.input else ""
        elif isinstance(ev, BlockDelta) and ev.kind == "json":
            # OpenAI chat addresses fragments by tool index, so interleaving is valid there only.
            assert fmt == "openai_chat" or ev.index not in closed, f"{fmt}: fragment after its block closed"
            args[ev.index] += ev.value
        elif isinstance(ev, BlockStop):
            closed.add(ev.index)
    return {names[i]: json.loads(args[i] or "{}") for i in names}


def expected() -> dict[str, dict]:
    return {c["function"]["name"]: json.loads(c["function"]["arguments"]) for c in CALLS}


@pytest.mark.parametrize("fmt", CLIENT_FORMATS)
@pytest.mark.parametrize("interleave", [False, True], ids=["sequential", "interleaved"])
def test_parallel_tool_call_fragments_reach_every_client_format_intact(fmt, interleave):
    wire = reencode(fmt, canonical_events(openai_stream(CALLS, interleave)))
    assert tool_inputs(fmt, wire) == expected()


@pytest.mark.parametrize("fmt", CLIENT_FORMATS)
def test_interleaved_fragments_split_at_every_byte(fmt):
    wire = reencode(fmt, canonical_events(openai_stream(CALLS[:2], True), step=1))
    assert tool_inputs(fmt, wire) == {k: v for k, v in expected().items() if k != "grep"}


def anthropic_frames(wire: bytes) -> list[dict]:
    return [json.loads(frame.split(b"data: ", 1)[1]) for frame in wire.split(b"\n\n") if b"data: " in frame]


def test_anthropic_blocks_stay_sequential_with_interleaved_upstream():
    """api.anthropic.com never has two blocks open at once; clients such as Claude Code parse
    a tool's input at its content_block_stop, so every fragment must come before it."""
    frames = anthropic_frames(reencode("anthropic_messages", canonical_events(openai_stream(CALLS, True))))
    open_block = None
    stopped = set()
    for f in frames:
        if f["type"] == "content_block_start":
            assert open_block is None, "two content blocks open at once"
            open_block = f["index"]
        elif f["type"] == "content_block_delta":
            assert f["index"] == open_block and f["index"] not in stopped
        elif f["type"] == "content_block_stop":
            assert f["index"] == open_block
            stopped.add(open_block)
            open_block = None
    assert [f["index"] for f in frames if f["type"] == "content_block_start"] == [0, 1, 2]


def test_responses_arguments_done_carries_every_fragment():
    wire = reencode("openai_responses", canonical_events(openai_stream(CALLS, True)))
    frames = anthropic_frames(wire)  # same `data: ` framing
    done = {f["item"]["name"]: json.loads(f["item"]["arguments"]) for f in frames
            if f["type"] == "response.output_item.done" and f["item"]["type"] == "function_call"}
    assert done == expected()
    finished_items = set()
    for f in frames:
        if f["type"] == "response.output_item.done":
            finished_items.add(f["item"]["id"])
        elif f["type"] == "response.function_call_arguments.delta":
            assert f["item_id"] not in finished_items, "argument delta after its item was done"
    completed = [f for f in frames if f["type"] == "response.completed"][0]["response"]
    assert {o["name"]: json.loads(o["arguments"]) for o in completed["output"]} == expected()


def test_late_fragment_for_a_closed_block_is_delivered_by_the_canonical_stream():
    """The decoder's contract (never drop a fragment) is what the encoders rely on."""
    events = canonical_events(openai_stream(CALLS[:2], True))
    stops = {ev.index: n for n, ev in enumerate(events) if isinstance(ev, BlockStop)}
    late = [ev for n, ev in enumerate(events)
            if isinstance(ev, BlockDelta) and n > stops.get(ev.index, 1 << 30)]
    assert late, "the interleaved stream must produce fragments after their block's stop"
    assert isinstance(events[-1], MessageStop)


# ------------------------------------------------------------------ SSE framing (shared by taps and codecs)

SSE_WIRE = (b": keep-alive\n\ndata:{\"a\":1}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n"
            b"data: line1\ndata:line2\n\n: comment\ndata:  two spaces\n\n")
SSE_EVENTS = [(None, b'{"a":1}'), ("ping", b'{"type":"ping"}'), (None, b"line1\nline2"),
              (None, b" two spaces")]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_sse_parser_reads_data_with_and_without_space_split_at_every_byte(newline):
    from providers.codecs.sse import SSEParser

    wire = SSE_WIRE.replace(b"\n", newline)
    parser, events = SSEParser(), []
    for i in range(len(wire)):
        events += parser.feed(wire[i:i + 1])
    events += parser.feed(b"\n\n" if newline == b"\r" else b"")  # a lone CR at the end waits for its LF
    assert events == SSE_EVENTS
    assert not parser.pending()


def test_parse_event_is_the_rule_the_taps_use():
    from providers.codecs.sse import parse_event

    assert parse_event(b"data:[DONE]") == (None, b"[DONE]")
    assert parse_event(b"data: [DONE]") == (None, b"[DONE]")
    assert parse_event(b": keep-alive") == (None, None)
    assert parse_event(b"event: error\ndata:{}") == ("error", b"{}")
