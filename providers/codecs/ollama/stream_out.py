"""Ollama native API: the stream encoder (canonical events -> client bytes)."""

from __future__ import annotations

import time

import orjson

from ..base import StreamEncoder
from ..canonical import (
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
    ToolUseBlock,
    Usage,
    merge_usage,
)
from ..sequencer import BlockSequencer
from .wire import _done_reason, _now_rfc3339


class OllamaStreamEncoder(StreamEncoder):
    """Canonical events -> NDJSON lines as Ollama writes them. Text and thinking
    deltas are written as they come; a tool call is buffered until its BlockStop
    and written as one `message.tool_calls` line (arguments as an object)."""

    def __init__(self, request: Request) -> None:
        self._model = request.model
        self._t0 = time.monotonic_ns()
        self._first: int | None = None
        self._tools: dict[int, list] = {}  # index -> [name, [json fragments]]
        self._usage = Usage()
        self._stop = None
        self._done = False
        self._blocks_in_order = BlockSequencer()  # a tool line is written at its (deferred) BlockStop

    def _line(self, message: dict, done: bool = False, **extra) -> bytes:
        obj = {"model": self._model, "created_at": _now_rfc3339(), "message": message, "done": done}
        obj.update(extra)
        return _dumps_line(obj)

    def encode(self, event: Event) -> bytes:
        events = self._blocks_in_order.push(event)
        if len(events) == 1:
            return self._encode(events[0])
        return b"".join(self._encode(ev) for ev in events)

    def _encode(self, event: Event) -> bytes:
        if self._done:
            return b""
        if isinstance(event, BlockDelta):
            if self._first is None:
                self._first = time.monotonic_ns()
            if event.kind == "text":
                return self._line({"role": "assistant", "content": event.value})
            if event.kind == "thinking":
                return self._line({"role": "assistant", "content": "", "thinking": event.value})
            if event.kind == "json" and event.index in self._tools:
                self._tools[event.index][1].append(event.value)
            return b""  # signatures have no Ollama form
        if isinstance(event, BlockStart):
            if isinstance(event.block, ToolUseBlock):
                self._tools[event.index] = [event.block.name, []]
            return b""
        if isinstance(event, BlockStop):
            tool = self._tools.pop(event.index, None)
            if tool is None:
                return b""
            raw = "".join(tool[1])
            try:
                args = orjson.loads(raw) if raw.strip() else {}
            except ValueError:
                args = None
            if not isinstance(args, dict):
                # Ollama clients expect an object here; arguments that are not a JSON
                # object (truncated by max_tokens, or a model glitch) are sent as {}.
                args = {}
            return self._line(
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": tool[0], "arguments": args}}],
                }
            )
        if isinstance(event, MessageStart):
            merge_usage(self._usage, event.usage)
            return b""
        if isinstance(event, MessageDelta):
            self._stop = event.stop_reason
            merge_usage(self._usage, event.usage)
            return b""
        if isinstance(event, MessageStop):
            self._done = True
            now = time.monotonic_ns()
            first = self._first if self._first is not None else now
            return self._line(
                {"role": "assistant", "content": ""},
                True,
                done_reason=_done_reason(self._stop),
                total_duration=now - self._t0,
                load_duration=0,
                prompt_eval_count=self._usage.input_tokens,
                prompt_eval_duration=first - self._t0,
                eval_count=self._usage.output_tokens,
                eval_duration=now - first,
            )
        if isinstance(event, StreamError):
            self._done = True
            return _dumps_line({"error": event.message})
        if isinstance(event, Ping):
            return b""
        return b""


def _dumps_line(obj: dict) -> bytes:
    return orjson.dumps(obj) + b"\n"
