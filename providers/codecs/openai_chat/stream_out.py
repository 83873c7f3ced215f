"""OpenAI Chat Completions: the stream encoder (canonical events -> client bytes)."""

from __future__ import annotations

import os
import time

import orjson

from ..base import StreamEncoder
from ..canonical import (
    BlockDelta,
    BlockStart,
    BlockStop,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    RedactedThinkingBlock,
    Request,
    StreamError,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
    merge_usage,
)
from .wire import _ERROR_WIRE, _dumps_str, _encode_usage, _finish_reason


class OpenAIChatStreamEncoder(StreamEncoder):
    """Canonical events -> the byte layout of OpenAI's own stream (tests/fakes/openai.py).

    `data: [DONE]` is written at MessageStop (right after the finish_reason chunk
    and the usage chunk), so close() only matters for a stream that never
    finished: it then writes an error event rather than truncating silently.
    After a StreamError nothing more is written (no [DONE]).
    """

    def __init__(self, request: Request) -> None:
        self._model = orjson.dumps(request.model)
        self._created = str(int(time.time())).encode()
        self._include_usage = request.stream_include_usage
        self._open_tail = b',"logprobs":null,"finish_reason":null}]' + (
            b',"usage":null}\n\n' if self._include_usage else b"}\n\n"
        )
        self._head = b""  # b'data: {"id":...,"model":...,' once started
        self._choice_head = b""
        self._blocks: dict[int, object] = {}  # canonical index -> "text" | "thinking" | tool call number
        self._tools = 0
        self._usage = Usage()
        self._stop_reason = None
        self._finished = False  # finish_reason chunk written
        self._done = False  # [DONE] or an error written

    def _start(self, message_id: str) -> bytes:
        rid = (
            message_id
            if message_id.startswith("chatcmpl-")
            else "chatcmpl-" + (message_id or os.urandom(12).hex())
        )
        self._head = (
            b'data: {"id":'
            + orjson.dumps(rid)
            + b',"object":"chat.completion.chunk","created":'
            + self._created
            + b',"model":'
            + self._model
            + b","
        )
        self._choice_head = self._head + b'"choices":[{"index":0,"delta":'
        return self._choice_head + _FIRST_DELTA + self._open_tail

    def _chunk(self, delta: bytes) -> bytes:
        return self._choice_head + delta + self._open_tail

    def encode(self, event) -> bytes:
        if self._done:
            return b""
        cls = type(event)
        prefix = (
            b"" if self._head or cls is MessageStart or cls is StreamError or cls is Ping else self._start("")
        )
        if cls is BlockDelta:
            return prefix + self._delta(event)
        if cls is BlockStart:
            return prefix + self._block_start(event)
        if cls is BlockStop or cls is Ping:
            return prefix
        if cls is MessageStart:
            merge_usage(self._usage, event.usage)
            return b"" if self._head else self._start(event.id)
        if cls is MessageDelta:
            merge_usage(self._usage, event.usage)
            self._stop_reason = event.stop_reason
            return prefix + self._finish()
        if cls is MessageStop:
            return prefix + self._finish() + self._usage_chunk() + self._end()
        if cls is StreamError:
            return self._error(event.type, event.message)
        return prefix

    def close(self) -> bytes:
        if self._done:
            return b""
        return self._error("bad_gateway", "upstream stream ended before the response was complete")

    def _block_start(self, event: BlockStart) -> bytes:
        block = event.block
        if isinstance(block, ToolUseBlock):
            n = self._tools
            self._tools += 1
            self._blocks[event.index] = n
            # The first fragment carries index, id and name together and a string
            # `arguments` (Goose drops calls otherwise).
            call = {
                "index": n,
                "id": block.id,
                "type": "function",
                "function": {"name": block.name, "arguments": _dumps_str(block.input) if block.input else ""},
            }
            return self._chunk(b'{"tool_calls":[' + orjson.dumps(call) + b"]}")
        if isinstance(block, ThinkingBlock):
            self._blocks[event.index] = "thinking"
            out = (
                self._chunk(b'{"reasoning_content":' + orjson.dumps(block.thinking) + b"}")
                if block.thinking
                else b""
            )
            if block.signature:
                out += self._signature(block.signature)
            return out
        if isinstance(block, RedactedThinkingBlock):
            self._blocks[event.index] = "redacted"
            return self._chunk(
                b'{"thinking_blocks":['
                + orjson.dumps({"type": "redacted_thinking", "data": block.data})
                + b"]}"
            )
        self._blocks[event.index] = "text"
        if isinstance(block, TextBlock) and block.text:
            return self._chunk(b'{"content":' + orjson.dumps(block.text) + b"}")
        return b""

    def _signature(self, signature: str) -> bytes:
        # LiteLLM's streaming convention: the signature arrives as a thinking_blocks
        # entry with empty text; clients that do not know the field ignore it, and a
        # LiteLLM-style client can echo it back so Anthropic accepts the history.
        return self._chunk(
            b'{"thinking_blocks":[{"type":"thinking","thinking":"","signature":'
            + orjson.dumps(signature)
            + b"}]}"
        )

    def _delta(self, event: BlockDelta) -> bytes:
        value = event.value
        if not value:
            return b""
        kind = event.kind
        if kind == "text":
            return self._chunk(b'{"content":' + orjson.dumps(value) + b"}")
        if kind == "json":
            n = self._blocks.get(event.index)
            if not isinstance(n, int):
                return b""  # arguments for a call that never started: nothing to attach them to
            return self._chunk(
                b'{"tool_calls":[{"index":'
                + str(n).encode()
                + b',"function":{"arguments":'
                + orjson.dumps(value)
                + b"}}]}"
            )
        if kind == "thinking":
            return self._chunk(b'{"reasoning_content":' + orjson.dumps(value) + b"}")
        if kind == "signature":
            return self._signature(value)
        return b""

    def _finish(self) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        finish = _finish_reason(self._stop_reason, self._tools > 0).encode()
        return (
            self._choice_head
            + b'{},"logprobs":null,"finish_reason":"'
            + finish
            + b'"}]'
            + (b',"usage":null}\n\n' if self._include_usage else b"}\n\n")
        )

    def _usage_chunk(self) -> bytes:
        if not self._include_usage:
            return b""
        # Goose needs "choices": [] and the top-level model on this chunk.
        return self._head + b'"choices":[],"usage":' + orjson.dumps(_encode_usage(self._usage)) + b"}\n\n"

    def _end(self) -> bytes:
        self._done = True
        return _DONE

    def _error(self, kind: str, message: str) -> bytes:
        self._done = True
        wire_type, code = _ERROR_WIRE.get(kind, ("server_error", None))
        return (
            b"data: "
            + orjson.dumps({"error": {"message": message, "type": wire_type, "code": code}})
            + b"\n\n"
        )


_DONE = b"data: [DONE]\n\n"


_FIRST_DELTA = b'{"role":"assistant","content":""}'
