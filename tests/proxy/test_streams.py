"""Unit tests (no server) for every stream pipeline in gateway/proxy/streams.py:
OpenAIChatTap (same-format OpenAI passthrough), DecoderTap (same-format other formats)
and Translator (cross-format). Each is fed the byte shapes real upstreams send."""

from __future__ import annotations

import json

import orjson
import pytest

from gateway.proxy.context import RequestContext
from gateway.proxy.streams import DecoderTap, OpenAIChatTap, Translator
from providers.codecs import get_codec
from providers.codecs.canonical import Message, Request, TextBlock
from providers.codecs.errors import GatewayError
from tests.fakes.anthropic import event_bytes

BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
USAGE = {
    "prompt_tokens": 11,
    "completion_tokens": 3,
    "total_tokens": 14,
    "prompt_tokens_details": {"cached_tokens": 4},
}


def data(obj, space: bool = True) -> bytes:
    return (b"data: " if space else b"data:") + orjson.dumps(obj) + b"\n\n"


def openai_stream(space: bool = True, include_usage: bool = True, done: bool = True) -> bytes:
    def chunk(delta, finish=None):
        obj = dict(BASE, choices=[{"index": 0, "delta": delta, "finish_reason": finish}])
        if include_usage:
            obj["usage"] = None
        return data(obj, space)

    out = (
        chunk({"role": "assistant", "content": ""}) + chunk({"content": "Hi"}) + chunk({"content": " there"})
    )
    out += chunk({}, "stop")
    if include_usage:
        out += data(dict(BASE, choices=[], usage=USAGE), space)
    if done:
        out += b"data: [DONE]\n\n" if space else b"data:[DONE]\n\n"
    return out


def feed_all(pipe, wire: bytes, step: int | None = None) -> bytes:
    pieces = [wire] if step is None else [wire[i : i + step] for i in range(0, len(wire), step)]
    return b"".join(pipe.feed(p) for p in pieces) + pipe.close()


def frames(out: bytes) -> list[bytes]:
    return [f for f in out.split(b"\n\n") if f]


# ------------------------------------------------------------------ OpenAIChatTap


@pytest.mark.parametrize("space", [True, False], ids=["data-space", "data-nospace"])
@pytest.mark.parametrize("step", [None, 1, 7], ids=["whole", "bytewise", "step7"])
def test_openai_tap_reads_usage_and_drops_the_usage_chunk_the_client_did_not_ask_for(space, step):
    ctx = RequestContext("chat")
    out = feed_all(OpenAIChatTap(ctx, wants_usage=False), openai_stream(space), step)
    assert ctx.usage is not None and ctx.usage.input_tokens == 11 and ctx.usage.output_tokens == 3
    assert ctx.usage.cache_read_tokens == 4
    assert b'"usage"' not in out  # neither the usage chunk nor the `"usage":null` fields
    assert ctx.status == 0 and b"error" not in out, out
    assert frames(out)[-1] in (b"data: [DONE]", b"data:[DONE]")
    assert ctx.chunks == 4  # role, two content chunks, finish


@pytest.mark.parametrize("space", [True, False], ids=["data-space", "data-nospace"])
def test_openai_tap_passes_usage_through_when_the_client_asked(space):
    ctx = RequestContext("chat")
    wire = openai_stream(space)
    out = feed_all(OpenAIChatTap(ctx, wants_usage=True), wire)
    assert out == wire
    assert ctx.usage.input_tokens == 11


def test_openai_tap_hot_path_returns_bytes_unchanged():
    ctx = RequestContext("chat")
    wire = openai_stream(include_usage=False)
    tap = OpenAIChatTap(ctx, wants_usage=True)
    assert tap.feed(wire) == wire
    assert tap.close() == b""


@pytest.mark.parametrize("space", [True, False], ids=["data-space", "data-nospace"])
def test_openai_tap_ignores_comments_and_keepalives(space):
    ctx = RequestContext("chat")
    wire = openai_stream(space)
    wire = b": keep-alive\n\n" + wire.replace(b"\n\n", b"\n\n: OPENROUTER PROCESSING\n\n", 2)
    out = feed_all(OpenAIChatTap(ctx, wants_usage=False), wire)
    assert ctx.usage.input_tokens == 11 and ctx.status == 0
    assert b'"usage"' not in out


@pytest.mark.parametrize("space", [True, False], ids=["data-space", "data-nospace"])
def test_openai_tap_records_a_mid_stream_error_and_appends_nothing(space):
    ctx = RequestContext("chat")
    wire = openai_stream(space, done=False, include_usage=False)
    wire += data({"error": {"message": "overloaded", "type": "server_error"}}, space)
    out = feed_all(OpenAIChatTap(ctx, wants_usage=False), wire)
    assert ctx.status == 502 and "overloaded" in ctx.error_message
    assert out == wire  # the upstream's own error event is the last thing the client sees


def test_openai_tap_appends_an_error_when_the_stream_ends_early():
    ctx = RequestContext("chat")
    out = feed_all(OpenAIChatTap(ctx, wants_usage=False), openai_stream(done=False, include_usage=False))
    last = json.loads(frames(out)[-1][6:])
    assert last["error"]["code"] == "bad_gateway" and ctx.status == 502


def test_openai_tap_crlf_line_ends():
    ctx = RequestContext("chat")
    out = feed_all(OpenAIChatTap(ctx, wants_usage=False), openai_stream().replace(b"\n", b"\r\n"), step=5)
    assert ctx.usage.input_tokens == 11 and ctx.status == 0
    assert b'"usage"' not in out


def test_openai_tap_error_method_writes_an_openai_error_event():
    ctx = RequestContext("chat")
    out = OpenAIChatTap(ctx, False).error(GatewayError("rate_limited", "slow down", 429))
    assert json.loads(out[6:])["error"]["message"] == "slow down" and ctx.status == 429


# ------------------------------------------------------------------ DecoderTap


def request(fmt: str) -> Request:
    return Request(
        model="alias", messages=[Message("user", [TextBlock("hi")])], stream=True, source_format=fmt
    )


def anthropic_stream(ping: bool = True, error: bool = False) -> bytes:
    out = event_bytes(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 20, "output_tokens": 1},
            },
        },
    )
    if ping:
        out += event_bytes("ping", {"type": "ping"})
    out += event_bytes(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    out += event_bytes(
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
    )
    if error:
        return out + event_bytes(
            "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        )
    out += event_bytes("content_block_stop", {"type": "content_block_stop", "index": 0})
    out += event_bytes(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 5},
        },
    )
    return out + event_bytes("message_stop", {"type": "message_stop"})


@pytest.mark.parametrize("step", [None, 1], ids=["whole", "bytewise"])
def test_decoder_tap_passes_bytes_and_reads_usage(step):
    ctx = RequestContext("messages")
    wire = anthropic_stream()
    out = feed_all(
        DecoderTap(ctx, get_codec("anthropic_messages"), request("anthropic_messages")), wire, step
    )
    assert out == wire
    assert ctx.usage.input_tokens == 20 and ctx.usage.output_tokens == 5 and ctx.status == 0


def test_decoder_tap_records_anthropic_mid_stream_error():
    ctx = RequestContext("messages")
    wire = anthropic_stream(error=True)
    out = feed_all(DecoderTap(ctx, get_codec("anthropic_messages"), request("anthropic_messages")), wire)
    assert out == wire  # nothing appended after the upstream's own error
    assert ctx.status >= 500 and "Overloaded" in ctx.error_message


def test_decoder_tap_appends_error_on_truncation():
    ctx = RequestContext("messages")
    wire = anthropic_stream()
    cut = wire[: wire.index(b"event: content_block_stop")]
    out = feed_all(DecoderTap(ctx, get_codec("anthropic_messages"), request("anthropic_messages")), cut)
    assert out.startswith(cut) and b"event: error" in out[len(cut) :]
    assert ctx.status == 502


# ------------------------------------------------------------------ Translator


@pytest.mark.parametrize("space", [True, False], ids=["data-space", "data-nospace"])
def test_translator_openai_to_anthropic(space):
    ctx = RequestContext("messages")
    pipe = Translator(
        ctx, get_codec("openai_chat"), get_codec("anthropic_messages"), request("anthropic_messages")
    )
    out = feed_all(pipe, openai_stream(space), step=3)
    names = [f.split(b"\n", 1)[0] for f in frames(out)]
    assert names[0] == b"event: message_start" and names[-1] == b"event: message_stop"
    assert b"Hi" in out and b" there" in out
    assert ctx.usage.input_tokens == 11 and ctx.status == 0


def test_translator_anthropic_to_openai_with_ping_and_error():
    ctx = RequestContext("chat")
    pipe = Translator(ctx, get_codec("anthropic_messages"), get_codec("openai_chat"), request("openai_chat"))
    out = feed_all(pipe, anthropic_stream(error=True))
    last = json.loads(frames(out)[-1][6:])
    assert "error" in last and b"[DONE]" not in out
    assert ctx.status >= 500


def test_translator_truncated_stream_ends_with_an_error():
    ctx = RequestContext("chat")
    pipe = Translator(
        ctx, get_codec("anthropic_messages"), get_codec("openai_responses"), request("openai_responses")
    )
    wire = anthropic_stream()
    out = feed_all(pipe, wire[: wire.index(b"event: message_delta")])
    assert b"response.failed" in out and ctx.status == 502
