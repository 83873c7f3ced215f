"""OpenAI Chat Completions: the stream decoder (upstream bytes -> canonical events)."""

from __future__ import annotations

import orjson

from ..base import StreamDecoder
from ..canonical import (
    Block,
    BlockDelta,
    BlockStart,
    BlockStop,
    MessageDelta,
    MessageStart,
    MessageStop,
    RedactedThinkingBlock,
    StreamError,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from ..errors import ERROR_TYPES
from ..sse import SSEParser
from .wire import (
    _classify,
    _dumps_str,
    _error_fields,
    _new_id,
    _stop_reason,
    decode_usage,
)


class OpenAIChatStreamDecoder(StreamDecoder):
    """chat.completion.chunk SSE -> canonical events.

    Blocks open as content arrives and close when a different block starts
    (canonical blocks are sequential). MessageDelta/MessageStop wait for `[DONE]`
    because the usage chunk comes after the finish_reason chunk.
    """

    def __init__(self) -> None:
        self._sse = SSEParser()
        self._ended = False
        self._closing = False
        self._started = False
        self._next = 0
        self._open = -1  # canonical index of the open block, -1 if none
        self._open_kind: str | None = None  # "text" | "thinking" | "tool"
        self._signed = False  # the open thinking block already got its signature
        self._tools: dict = {}
        self._last_tool = None
        self._finish: str | None = None
        self._usage: Usage | None = None

    def feed(self, chunk: bytes) -> list:
        if self._ended:
            return []
        out: list = []
        for _, data in self._sse.feed(chunk):
            self._handle(data, out)
            if self._ended:
                break
        return out

    def close(self) -> list:
        if self._ended:
            return []
        self._closing = True
        out = self.feed(b"\n\n")  # a last event without its blank line still counts
        if self._ended:
            return out
        if self._finish is not None:
            self._done(out)  # some servers omit [DONE] after the finish_reason
        else:
            self._ended = True
            out.append(StreamError("bad_gateway", "upstream stream ended early", 502))
        return out

    def _handle(self, data: bytes, out: list) -> None:
        if data[:1] == b"[" and data.strip() == b"[DONE]":
            self._done(out)
            return
        if not data.strip():
            return
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._ended = True
            if self._closing:
                out.append(
                    StreamError("bad_gateway", "upstream stream ended early (in the middle of an event)", 502)
                )
            else:
                out.append(
                    StreamError(
                        "bad_gateway",
                        "upstream sent invalid JSON in its stream: " + data[:120].decode("utf-8", "replace"),
                        502,
                    )
                )
            return
        if not isinstance(obj, dict):
            return
        err = obj.get("error")
        if err:
            self._ended = True
            out.append(_stream_error_from(err))
            return
        if not self._started:
            self._started = True
            rid, model = obj.get("id"), obj.get("model")
            out.append(
                MessageStart(
                    rid if isinstance(rid, str) and rid else _new_id("chatcmpl-"),
                    model if isinstance(model, str) else "",
                )
            )
        choices = obj.get("choices")
        if choices and isinstance(choices, list):
            for choice in choices:
                # n > 1 is not representable in canonical: only the first choice counts.
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta")
                if delta and isinstance(delta, dict):
                    self._delta(delta, out)
                finish = choice.get("finish_reason")
                if finish:
                    self._finish = finish
        usage = obj.get("usage")
        if usage:
            # cumulative where servers repeat it (vLLM continuous usage stats): last wins
            self._usage = decode_usage(usage)

    def _switch(self, kind: str, block: Block, out: list) -> int:
        if self._open >= 0:
            out.append(BlockStop(self._open))
        index = self._open = self._next
        self._next += 1
        self._open_kind = kind
        self._signed = False
        out.append(BlockStart(index, block))
        return index

    def _thinking_index(self, out: list) -> int:
        if self._open_kind == "thinking" and not self._signed:
            return self._open
        return self._switch("thinking", ThinkingBlock(""), out)

    def _delta(self, delta: dict, out: list) -> None:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            out.append(BlockDelta(self._thinking_index(out), "thinking", reasoning))
        blocks = delta.get("thinking_blocks")
        if blocks and isinstance(blocks, list):
            self._thinking_blocks(blocks, bool(reasoning), out)
        content = delta.get("content")
        if not content:
            content = delta.get("refusal")
        if content and isinstance(content, str):
            index = self._open if self._open_kind == "text" else self._switch("text", TextBlock(""), out)
            out.append(BlockDelta(index, "text", content))
        calls = delta.get("tool_calls")
        if calls and isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    self._tool_fragment(call, out)

    def _thinking_blocks(self, blocks: list, text_seen: bool, out: list) -> None:
        # LiteLLM sends each thinking piece twice (reasoning_content and
        # thinking_blocks[].thinking) and the signature in a thinking_blocks entry
        # with empty text.
        for tb in blocks:
            if not isinstance(tb, dict):
                continue
            if tb.get("type") == "redacted_thinking":
                index = self._switch("redacted", RedactedThinkingBlock(tb.get("data") or ""), out)
                out.append(BlockStop(index))
                self._open, self._open_kind = -1, None
                continue
            text = tb.get("thinking")
            if text and isinstance(text, str) and not text_seen:
                out.append(BlockDelta(self._thinking_index(out), "thinking", text))
            signature = tb.get("signature")
            if signature and isinstance(signature, str):
                out.append(BlockDelta(self._thinking_index(out), "signature", signature))
                self._signed = True

    def _tool_fragment(self, call: dict, out: list) -> None:
        key = call.get("index")
        call_id = call.get("id")
        if not isinstance(key, int):
            # Servers that omit `index`: a new id is a new call, otherwise the last one.
            if isinstance(call_id, str) and call_id and call_id not in self._tools:
                key = call_id
            else:
                key = self._last_tool if self._last_tool is not None else 0
        fn = call.get("function")
        fn = fn if isinstance(fn, dict) else {}
        name = fn.get("name")
        args = fn.get("arguments")
        if isinstance(args, dict):
            args = _dumps_str(args)
        state = self._tools.get(key)
        if state is None:
            state = self._tools[key] = _ToolCall(
                call_id if isinstance(call_id, str) and call_id else None,
                name if isinstance(name, str) and name else None,
            )
        else:
            if not state.id and isinstance(call_id, str) and call_id:
                state.id = call_id
            if not state.name and isinstance(name, str) and name:
                state.name = name
        self._last_tool = key
        if state.index < 0:
            if args and isinstance(args, str):
                state.pending.append(args)
            if state.name:
                self._start_tool(state, out)
        elif args and isinstance(args, str):
            # A fragment for a call that is no longer the open block (servers that
            # interleave parallel calls) still goes to its own index: never dropped.
            out.append(BlockDelta(state.index, "json", args))

    def _start_tool(self, state: _ToolCall, out: list) -> None:
        state.index = self._switch(
            "tool", ToolUseBlock(state.id or _new_id("call_"), state.name or "", {}), out
        )
        if state.pending:
            out.append(BlockDelta(state.index, "json", "".join(state.pending)))
            state.pending = []

    def _done(self, out: list) -> None:
        self._ended = True
        if not self._started:
            out.append(StreamError("bad_gateway", "upstream stream ended before any chunk", 502))
            return
        for state in self._tools.values():
            if state.index < 0:  # a call whose name never came
                self._start_tool(state, out)
        if self._open >= 0:
            out.append(BlockStop(self._open))
            self._open = -1
        out.append(MessageDelta(_stop_reason(self._finish, bool(self._tools)), usage=self._usage))
        out.append(MessageStop())


def _stream_error_from(err) -> StreamError:
    if isinstance(err, dict):
        message, wire_type, code, status = _error_fields({"error": err})
    else:
        message, wire_type, code, status = (
            (err if isinstance(err, str) else _dumps_str(err)),
            None,
            None,
            None,
        )
    message = message or "upstream error"
    kind = _classify(status, message, code, wire_type)
    return StreamError(kind, "upstream error: " + message, status or ERROR_TYPES.get(kind, 502))


class _ToolCall:
    __slots__ = ("id", "name", "index", "pending")

    def __init__(self, id, name):
        self.id = id
        self.name = name
        self.index = -1  # canonical block index once started
        self.pending: list[str] = []  # arguments that came before the name
