"""Ollama native API: the stream decoder (upstream bytes -> canonical events)."""

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
    StreamError,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from ..shared import new_id
from .wire import _stop_from_done_reason


class OllamaStreamDecoder(StreamDecoder):
    """NDJSON lines -> canonical events. Thinking and text deltas open blocks lazily;
    each (complete) tool call becomes BlockStart + one json delta + BlockStop."""

    def __init__(self) -> None:
        self._buf = b""
        self._started = False
        self._finished = False
        self._index = -1
        self._open: str | None = None  # "text" / "thinking" / None
        self._had_tools = False
        self._call_prefix = new_id("call_", 12) + "_"
        self._calls = 0

    def feed(self, chunk: bytes) -> list[Event]:
        if self._finished:
            return []
        buf = self._buf + chunk
        out: list[Event] = []
        start = 0
        while not self._finished:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            self._line(line, out)
        self._buf = buf[start:] if not self._finished else b""
        return out

    def close(self) -> list[Event]:
        if self._finished:
            return []
        out: list[Event] = []
        if self._buf.strip():
            line, self._buf = self._buf, b""
            self._line(line, out)  # a last line without its newline
        if not self._finished:
            self._finished = True
            out.append(
                StreamError("bad_gateway", "Ollama stream ended before its final (done) message.", 502)
            )
        return out

    # -- internals

    def _line(self, line: bytes, out: list[Event]) -> None:
        line = line.strip()
        if not line:
            return
        try:
            obj = orjson.loads(line)
        except ValueError:
            self._finished = True
            out.append(StreamError("bad_gateway", "Ollama stream carried a line that is not JSON.", 502))
            return
        if not isinstance(obj, dict):
            self._finished = True
            out.append(
                StreamError("bad_gateway", "Ollama stream carried a line that is not a JSON object.", 502)
            )
            return
        if obj.get("error"):
            self._finished = True
            err = obj["error"]
            message = (
                err if isinstance(err, str) else str(err.get("message") if isinstance(err, dict) else err)
            )
            out.append(StreamError("api_error", message, 500))
            return
        if not self._started:
            self._started = True
            out.append(MessageStart(id=new_id("msg_"), model=str(obj.get("model") or "")))
        msg = obj.get("message") or {}
        if isinstance(msg, dict):
            thinking = msg.get("thinking")
            if thinking:
                self._ensure("thinking", out)
                out.append(BlockDelta(self._index, "thinking", str(thinking)))
            content = msg.get("content")
            if content:
                self._ensure("text", out)
                out.append(
                    BlockDelta(self._index, "text", content if isinstance(content, str) else str(content))
                )
            for call in msg.get("tool_calls") or []:
                self._close_block(out)
                fn = (call or {}).get("function") or {}
                call_id = str(call.get("id") or self._call_prefix + str(self._calls))
                self._calls += 1
                self._had_tools = True
                self._index += 1
                out.append(
                    BlockStart(self._index, ToolUseBlock(id=call_id, name=fn.get("name") or "", input={}))
                )
                args = fn.get("arguments")
                args_json = (
                    args if isinstance(args, str) else orjson.dumps(args if args is not None else {}).decode()
                )
                out.append(BlockDelta(self._index, "json", args_json))
                out.append(BlockStop(self._index))
        if obj.get("done"):
            self._close_block(out)
            self._finished = True
            out.append(
                MessageDelta(
                    stop_reason=_stop_from_done_reason(obj.get("done_reason"), self._had_tools),
                    usage=Usage(
                        input_tokens=int(obj.get("prompt_eval_count") or 0),
                        output_tokens=int(obj.get("eval_count") or 0),
                    ),
                )
            )
            out.append(MessageStop())

    def _ensure(self, kind: str, out: list[Event]) -> None:
        if self._open == kind:
            return
        self._close_block(out)
        self._index += 1
        self._open = kind
        out.append(BlockStart(self._index, TextBlock("") if kind == "text" else ThinkingBlock("")))

    def _close_block(self, out: list[Event]) -> None:
        if self._open is not None:
            out.append(BlockStop(self._index))
            self._open = None
