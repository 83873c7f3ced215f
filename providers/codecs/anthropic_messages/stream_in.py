"""Anthropic Messages API: the stream decoder (upstream bytes -> canonical events)."""

from __future__ import annotations

import orjson

from ..base import StreamDecoder
from ..canonical import (
    BlockDelta,
    BlockStart,
    BlockStop,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    RedactedThinkingBlock,
    ServerToolBlock,
    StreamError,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from ..shared import mentions_context_overflow
from ..sse import SSEParser
from .wire import (
    _CONTEXT_PHRASES,
    _ERROR_IN,
    _ERROR_OUT,
    _STOP_IN,
    _server_result,
    _usage_in,
)


class AnthropicStreamDecoder(StreamDecoder):
    """Anthropic SSE bytes (any chunking) -> canonical events."""

    __slots__ = ("_sse", "_done", "_raw_usage", "_ignored", "_server")

    def __init__(self) -> None:
        self._sse = SSEParser()
        self._done = False
        # Anthropic-shaped usage as reported so far; message_delta values are cumulative
        self._raw_usage = {
            "input_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 0,
        }
        self._ignored: set[int] = set()  # indices of block types the canonical model cannot carry
        self._server: dict[int, tuple[ServerToolBlock, list[str]]] = {}  # server tool calls being streamed

    def _usage(self, update) -> Usage:
        raw = self._raw_usage
        if isinstance(update, dict):
            for k in raw:
                v = update.get(k)
                if isinstance(v, int):
                    raw[k] = v
        return _usage_in(raw)

    def feed(self, chunk: bytes) -> list[Event]:
        if self._done:
            return []
        out: list[Event] = []
        for name, data in self._sse.feed(chunk):
            self._handle(name, data, out)
            if self._done:
                break
        return out

    def close(self) -> list[Event]:
        if self._done:
            return []
        self._done = True
        detail = " (in the middle of an event)" if self._sse.pending() else ""
        return [
            StreamError("bad_gateway", f"Anthropic upstream stream ended before message_stop{detail}", 502)
        ]

    def _handle(self, name: str | None, data: bytes, out: list) -> None:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._done = True
            out.append(
                StreamError(
                    "bad_gateway",
                    "Anthropic upstream sent an unreadable stream event: "
                    + data[:200].decode("utf-8", "replace"),
                    502,
                )
            )
            return
        if not isinstance(obj, dict):
            return
        kind = obj.get("type") or name
        if kind == "content_block_delta":
            index = obj.get("index", 0)
            if index in self._ignored:
                return
            delta = obj.get("delta") or {}
            if index in self._server:  # a server tool's input: emitted whole at its stop
                if delta.get("type") == "input_json_delta":
                    self._server[index][1].append(delta.get("partial_json", ""))
                return
            dkind = delta.get("type")
            if dkind == "text_delta":
                out.append(BlockDelta(index, "text", delta.get("text", "")))
            elif dkind == "input_json_delta":
                out.append(BlockDelta(index, "json", delta.get("partial_json", "")))
            elif dkind == "thinking_delta":
                out.append(BlockDelta(index, "thinking", delta.get("thinking", "")))
            elif dkind == "signature_delta":
                out.append(BlockDelta(index, "signature", delta.get("signature", "")))
            # citations_delta and future delta types: nothing canonical to carry
        elif kind == "content_block_start":
            index = obj.get("index", 0)
            cb = obj.get("content_block") or {}
            ckind = cb.get("type")
            if ckind == "text":
                out.append(BlockStart(index, TextBlock("")))
                if cb.get("text"):
                    out.append(BlockDelta(index, "text", cb["text"]))
            elif ckind == "tool_use":
                out.append(BlockStart(index, ToolUseBlock(cb.get("id") or "", cb.get("name") or "", {})))
                if cb.get("input"):
                    out.append(BlockDelta(index, "json", orjson.dumps(cb["input"]).decode()))
            elif ckind == "thinking":
                out.append(BlockStart(index, ThinkingBlock("")))
                if cb.get("thinking"):
                    out.append(BlockDelta(index, "thinking", cb["thinking"]))
                if cb.get("signature"):
                    out.append(BlockDelta(index, "signature", cb["signature"]))
            elif ckind == "redacted_thinking":
                out.append(BlockStart(index, RedactedThinkingBlock(cb.get("data") or "")))
            elif ckind == "server_tool_use":
                initial = cb.get("input") if isinstance(cb.get("input"), dict) else {}
                self._server[index] = (ServerToolBlock(cb.get("id") or "", cb.get("name") or "", initial), [])
            elif isinstance(ckind, str) and ckind.endswith("_tool_result") and ckind != "tool_result":
                out.append(BlockStart(index, _server_result(cb)))
            else:
                self._ignored.add(index)
        elif kind == "content_block_stop":
            index = obj.get("index", 0)
            server = self._server.pop(index, None)
            if server is not None:
                block, parts = server
                try:
                    streamed = orjson.loads("".join(parts)) if "".join(parts).strip() else None
                except orjson.JSONDecodeError:
                    streamed = None
                if isinstance(streamed, dict):
                    block.input = streamed
                out.append(BlockStart(index, block))
                out.append(BlockStop(index))
            elif index not in self._ignored:
                out.append(BlockStop(index))
        elif kind == "message_start":
            msg = obj.get("message") or {}
            out.append(
                MessageStart(msg.get("id") or "", msg.get("model") or "", self._usage(msg.get("usage")))
            )
        elif kind == "message_delta":
            delta = obj.get("delta") or {}
            stop = delta.get("stop_reason")
            out.append(
                MessageDelta(
                    _STOP_IN.get(stop, "end_turn") if stop is not None else None,
                    delta.get("stop_sequence"),
                    self._usage(obj.get("usage")),
                )
            )
        elif kind == "message_stop":
            self._done = True
            out.append(MessageStop())
        elif kind == "ping":
            out.append(Ping())
        elif kind == "error":
            err = obj.get("error") or {}
            ctype = _ERROR_IN.get(err.get("type"), "api_error")
            message = err.get("message") or "Anthropic upstream reported an error mid-stream"
            if ctype == "invalid_request" and mentions_context_overflow(message, _CONTEXT_PHRASES):
                ctype = "context_length"
            self._done = True
            out.append(StreamError(ctype, message, _ERROR_OUT[ctype][0]))
