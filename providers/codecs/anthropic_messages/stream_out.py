"""Anthropic Messages API: the stream encoder (canonical events -> client bytes)."""

from __future__ import annotations

import orjson

from ..base import StreamEncoder
from ..canonical import (
    Block,
    BlockDelta,
    BlockStart,
    BlockStop,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    Request,
    StreamError,
    TextBlock,
    ThinkingBlock,
    Usage,
)
from ..sequencer import BlockSequencer
from ..shared import new_id
from .wire import (
    _ERROR_OUT,
    _STOP_OUT,
    _client_message,
    _message_id,
    _safe_id,
    _usage_out,
)


class AnthropicStreamEncoder(StreamEncoder):
    """Canonical events -> Anthropic SSE bytes, laid out like api.anthropic.com's.

    Tolerates streams from other formats: block indices are renumbered 0..n in
    start order (SDKs index the content array with them), missing usage becomes
    zeros, open blocks are closed before the message ends, and message_delta is
    held until MessageStop so it always carries a stop_reason and the final
    cumulative usage (OpenAI sends usage after finish_reason).
    """

    __slots__ = (
        "_model",
        "_started",
        "_done",
        "_usage",
        "_start_usage",
        "_index",
        "_open",
        "_next",
        "_stop_reason",
        "_stop_sequence",
        "_saw_tool",
        "_blocks_in_order",
    )

    def __init__(self, request: Request) -> None:
        self._model = request.model
        self._started = False
        self._done = False
        self._usage = Usage()
        self._start_usage: dict | None = None
        self._index: dict[int, bytes] = {}  # canonical index -> wire index (ascii bytes)
        self._open: set[int] = set()  # canonical indices of open blocks
        self._next = 0
        self._stop_reason: str | None = None
        self._stop_sequence: str | None = None
        self._saw_tool = False
        self._blocks_in_order = BlockSequencer()  # one block open at a time, like api.anthropic.com

    def encode(self, event: Event) -> bytes:
        events = self._blocks_in_order.push(event)
        if len(events) == 1:
            return self._encode(events[0])
        return b"".join(self._encode(ev) for ev in events)

    def _encode(self, event: Event) -> bytes:
        if self._done:
            return b""
        if isinstance(event, BlockDelta):
            wire = self._index.get(event.index)
            if wire is None or event.index not in self._open:
                return self._orphan_delta(event)
            return _DELTA_HEAD + wire + _DELTA_KINDS[event.kind] + orjson.dumps(event.value) + _DELTA_TAIL
        if isinstance(event, BlockStart):
            return self._block_start(event.index, event.block)
        if isinstance(event, BlockStop):
            return self._block_stop(event.index)
        if isinstance(event, MessageStart):
            return self._message_start(event)
        if isinstance(event, MessageDelta):
            out = self._close_blocks()
            if event.stop_reason is not None:
                self._stop_reason = event.stop_reason
            if event.stop_sequence is not None:
                self._stop_sequence = event.stop_sequence
            if event.usage is not None:
                self._merge_usage(event.usage)
            return out
        if isinstance(event, MessageStop):
            out = self._message_start(None) if not self._started else b""
            out += self._close_blocks()
            out += self._message_delta() + _STOP
            self._done = True
            return out
        if isinstance(event, Ping):
            # any event before message_start makes Anthropic SDKs raise
            return _PING if self._started else b""
        if isinstance(event, StreamError):
            self._done = True
            _, kind = _ERROR_OUT.get(event.type, (500, "api_error"))
            return _event(
                "error",
                {
                    "type": "error",
                    "error": {"type": kind, "message": _client_message(event.type, event.message)},
                },
            )
        return b""

    # -- pieces

    def _merge_usage(self, update: Usage) -> None:
        u = self._usage
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            v = getattr(update, name)
            if v:
                setattr(u, name, v)

    def _message_start(self, event: MessageStart | None) -> bytes:
        if self._started:
            if event is not None:  # a late MessageStart (after a synthesized one): keep its usage
                self._merge_usage(event.usage)
            return b""
        self._started = True
        if event is not None:
            self._merge_usage(event.usage)
        usage = _usage_out(self._usage)
        self._start_usage = usage
        return _event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": _message_id(event.id if event is not None else None),
                    "type": "message",
                    "role": "assistant",
                    "model": self._model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": usage,
                },
            },
        )

    def _block_start(self, index: int, block: Block) -> bytes:
        out = self._message_start(None) if not self._started else b""
        if index in self._index:
            return out  # duplicate start: ignore
        wire_no = self._next
        self._next += 1
        wire = str(wire_no).encode()
        self._index[index] = wire
        self._open.add(index)
        kind = block.type
        follow: list[tuple[str, str]] = []
        if kind == "text":
            cb = {"type": "text", "text": ""}
            if block.text:
                follow.append(("text", block.text))
        elif kind == "tool_use":
            self._saw_tool = True
            cb = {
                "type": "tool_use",
                "id": _safe_id(block.id) if block.id else new_id("toolu_"),
                "name": block.name,
                "input": {},
            }
            if block.input:
                follow.append(("json", orjson.dumps(block.input).decode()))
        elif kind == "thinking":
            cb = {"type": "thinking", "thinking": "", "signature": ""}
            if block.thinking:
                follow.append(("thinking", block.thinking))
            if block.signature:
                follow.append(("signature", block.signature))
        elif kind == "redacted_thinking":
            cb = {"type": "redacted_thinking", "data": block.data}
        else:  # images / tool results never appear in an assistant stream
            cb = {"type": "text", "text": ""}
        out += (
            b"event: content_block_start\ndata: "
            + orjson.dumps({"type": "content_block_start", "index": wire_no, "content_block": cb})
            + b"\n\n"
        )
        for dkind, value in follow:
            out += _DELTA_HEAD + wire + _DELTA_KINDS[dkind] + orjson.dumps(value) + _DELTA_TAIL
        return out

    def _orphan_delta(self, event: BlockDelta) -> bytes:
        """A delta without an open block (sloppy upstream): open one for text/thinking."""
        if event.index in self._index or event.kind not in ("text", "thinking"):
            return b""
        block = TextBlock("") if event.kind == "text" else ThinkingBlock("")
        return self._block_start(event.index, block) + self._encode(event)

    def _block_stop(self, index: int) -> bytes:
        if index not in self._open:
            return b""
        self._open.discard(index)
        return (
            b'event: content_block_stop\ndata: {"type":"content_block_stop","index":'
            + self._index[index]
            + b"}\n\n"
        )

    def _close_blocks(self) -> bytes:
        if not self._open:
            return b""
        return b"".join(self._block_stop(i) for i in sorted(self._open, key=lambda i: int(self._index[i])))

    def _message_delta(self) -> bytes:
        stop = self._stop_reason or ("tool_use" if self._saw_tool else "end_turn")
        usage = _usage_out(self._usage)
        start = self._start_usage or {}
        if (
            usage["input_tokens"] == start.get("input_tokens")
            and usage["cache_creation_input_tokens"] == start.get("cache_creation_input_tokens")
            and usage["cache_read_input_tokens"] == start.get("cache_read_input_tokens")
        ):
            # what api.anthropic.com sends when input usage is already in message_start
            usage = {"output_tokens": usage["output_tokens"]}
        return _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": _STOP_OUT.get(stop, stop), "stop_sequence": self._stop_sequence},
                "usage": usage,
            },
        )


_PING = b'event: ping\ndata: {"type": "ping"}\n\n'


_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


_DELTA_HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'


_DELTA_KINDS = {
    "text": b',"delta":{"type":"text_delta","text":',
    "json": b',"delta":{"type":"input_json_delta","partial_json":',
    "thinking": b',"delta":{"type":"thinking_delta","thinking":',
    "signature": b',"delta":{"type":"signature_delta","signature":',
}


_DELTA_TAIL = b"}}\n\n"


def _event(name: str, obj: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"
