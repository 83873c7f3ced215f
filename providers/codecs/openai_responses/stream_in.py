"""OpenAI Responses API: the stream decoder (upstream bytes -> canonical events)."""

from __future__ import annotations

import orjson

from ..base import StreamDecoder
from ..canonical import (
    Block,
    BlockDelta,
    BlockStart,
    BlockStop,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    RedactedThinkingBlock,
    StreamError,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
)
from ..sse import SSEParser
from .wire import (
    _new_id,
    _stop_reason,
    _summary_text,
    join_namespace,
    reasoning_block,
    stream_error_from,
    usage_from,
)


class ResponsesStreamDecoder(StreamDecoder):
    """Responses SSE (`event: response.X` + `data: {...}`) -> canonical events."""

    def __init__(self) -> None:
        self._sse = SSEParser()
        self._started = False
        self._done = False
        self._next_index = 0
        self._blocks: dict = {}  # key -> [canonical index, kind, saw_delta, text]
        self._items: dict[int, str] = {}  # output_index -> item type
        self._item_ids: dict[str, int] = {}  # item id -> output_index
        self._has_calls = False
        self._refused = False
        self._text_items: set[int] = set()  # output indexes of messages that produced text blocks
        self._text_done: set = set()  # text parts already closed

    # -- helpers
    def _start(self, out: list, data: dict | None = None) -> None:
        if self._started:
            return
        self._started = True
        resp = (data or {}).get("response") or {}
        out.append(
            MessageStart(
                id=resp.get("id") or _new_id("resp_"),
                model=resp.get("model") or "",
                usage=usage_from(resp.get("usage")),
            )
        )

    def _open(self, out: list, key, block: Block, kind: str) -> list:
        state = [self._next_index, kind, False, ""]
        self._next_index += 1
        self._blocks[key] = state
        out.append(BlockStart(state[0], block))
        return state

    def _close(self, out: list, key) -> None:
        state = self._blocks.pop(key, None)
        if state is not None:
            out.append(BlockStop(state[0]))

    def _output_index(self, data: dict) -> int:
        oi = data.get("output_index")
        if isinstance(oi, int):
            return oi
        return self._item_ids.get(data.get("item_id"), -1)

    def _text_delta(self, out: list, data: dict, delta: str) -> None:
        oi = self._output_index(data)
        key = ("text", oi, data.get("content_index") or 0)
        state = self._blocks.get(key)
        if state is None:
            if key in self._text_done:
                return  # a late done/part event for a part already closed
            state = self._open(out, key, TextBlock(""), "text")
            self._text_items.add(oi)
        if delta:
            state[2] = True
            out.append(BlockDelta(state[0], "text", delta))

    def _finish(self, out: list, resp: dict) -> None:
        for key in list(self._blocks):
            self._close(out, key)
        output = resp.get("output")
        has_calls = self._has_calls or any(
            isinstance(i, dict) and i.get("type") == "function_call" for i in output or ()
        )
        stop = _stop_reason(resp.get("status"), resp.get("incomplete_details"), has_calls, self._refused)
        out.append(MessageDelta(stop_reason=stop, usage=usage_from(resp.get("usage"))))
        out.append(MessageStop())
        self._done = True

    # -- API
    def feed(self, chunk: bytes) -> list[Event]:
        out: list[Event] = []
        if self._done:
            return out
        for event, raw in self._sse.feed(chunk):
            if self._done:
                break
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # keep-alives and junk are skipped; close() reports a missing end
            if not isinstance(data, dict):
                continue
            kind = data.get("type") or event
            if isinstance(kind, str):
                self._handle(kind, data, out)
        return out

    def _handle(self, kind: str, data: dict, out: list) -> None:
        if kind == "response.created" or kind == "response.in_progress" or kind == "response.queued":
            self._start(out, data)
            return
        if kind == "error":
            err = data.get("error") if isinstance(data.get("error"), dict) else data
            self._start(out)
            out.append(stream_error_from(err, "upstream stream error"))
            self._done = True
            return
        if kind == "response.failed":
            resp = data.get("response") or {}
            self._start(out, data)
            out.append(stream_error_from(resp.get("error"), "upstream response failed"))
            self._done = True
            return
        if not kind.startswith("response."):
            return
        self._start(out)
        if kind in ("response.completed", "response.incomplete"):
            self._finish(out, data.get("response") or {})
        elif kind == "response.output_text.delta":
            self._text_delta(out, data, data.get("delta") or "")
        elif kind == "response.refusal.delta":
            self._refused = True
            self._text_delta(out, data, data.get("delta") or "")
        elif kind in ("response.output_text.done", "response.refusal.done", "response.content_part.done"):
            # servers that skip the deltas still send the full text here
            key = ("text", self._output_index(data), data.get("content_index") or 0)
            state = self._blocks.get(key)
            if state is None or not state[2]:
                text = data.get("text")
                if text is None:
                    part = data.get("part") or {}
                    text = part.get("text") or part.get("refusal")
                if text:
                    self._text_delta(out, data, text)
            if kind == "response.content_part.done":
                self._close(out, key)
                self._text_done.add(key)
        elif kind == "response.output_item.added":
            self._item_added(data, out)
        elif kind == "response.output_item.done":
            self._item_done(data, out)
        elif kind == "response.function_call_arguments.delta":
            state = self._blocks.get(("item", self._output_index(data)))
            if state is not None and data.get("delta"):
                state[2] = True
                out.append(BlockDelta(state[0], "json", data["delta"]))
        elif kind == "response.function_call_arguments.done":
            state = self._blocks.get(("item", self._output_index(data)))
            if state is not None and not state[2] and data.get("arguments"):
                state[2] = True
                out.append(BlockDelta(state[0], "json", data["arguments"]))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            state = self._blocks.get(("item", self._output_index(data)))
            if state is not None and state[1] == "reasoning" and data.get("delta"):
                self._thinking(out, state, data["delta"])
        elif kind in ("response.reasoning_summary_text.done", "response.reasoning_text.done"):
            state = self._blocks.get(("item", self._output_index(data)))
            if state is not None and state[1] == "reasoning" and not state[2] and data.get("text"):
                self._thinking(out, state, data["text"])
        elif kind == "response.reasoning_summary_part.added":
            state = self._blocks.get(("item", self._output_index(data)))
            if state is not None and state[1] == "reasoning" and state[3]:
                state[2] = False  # a new part: its text has not been seen yet
                self._thinking(out, state, "\n\n", sep=True)

    def _thinking(self, out: list, state: list, text: str, sep: bool = False) -> None:
        if not sep:
            state[2] = True
        state[3] += text
        out.append(BlockDelta(state[0], "thinking", text))

    def _item_added(self, data: dict, out: list) -> None:
        item = data.get("item") or {}
        oi = data.get("output_index")
        if not isinstance(oi, int):
            oi = len(self._items)
        kind = item.get("type")
        self._items[oi] = kind
        if isinstance(item.get("id"), str):
            self._item_ids[item["id"]] = oi
        if kind == "function_call":
            self._has_calls = True
            name = item.get("name") or ""
            if item.get("namespace"):
                name = join_namespace(item["namespace"], name)
            state = self._open(
                out,
                ("item", oi),
                ToolUseBlock(
                    id=item.get("call_id") or item.get("id") or _new_id("call_"), name=name, input={}
                ),
                "call",
            )
            if item.get("arguments"):
                state[2] = True
                out.append(BlockDelta(state[0], "json", item["arguments"]))
        elif kind == "reasoning":
            self._open(out, ("item", oi), ThinkingBlock(""), "reasoning")

    def _item_done(self, data: dict, out: list) -> None:
        item = data.get("item") or {}
        oi = data.get("output_index")
        if not isinstance(oi, int):
            oi = self._item_ids.get(item.get("id"), -1)
        kind = item.get("type") or self._items.get(oi)
        if kind == "message":
            keys = [k for k in self._blocks if k[0] == "text" and k[1] == oi]
            if oi not in self._text_items:  # a message that was never streamed part by part
                for ci, part in enumerate(item.get("content") or ()):
                    if isinstance(part, dict) and (part.get("text") or part.get("refusal")):
                        if part.get("type") == "refusal":
                            self._refused = True
                        self._text_delta(
                            out,
                            {"output_index": oi, "content_index": ci},
                            part.get("text") or part.get("refusal"),
                        )
                        self._close(out, ("text", oi, ci))
            for k in keys:
                self._close(out, k)
            return
        key = ("item", oi)
        state = self._blocks.get(key)
        if kind == "function_call":
            if state is None:  # done without added (emits the arguments itself)
                self._item_added({"item": item, "output_index": oi}, out)
            elif not state[2] and item.get("arguments"):
                out.append(BlockDelta(state[0], "json", item["arguments"]))
            self._close(out, key)
        elif kind == "reasoning":
            if state is None:
                state = self._open(out, key, ThinkingBlock(""), "reasoning")
            if not state[3]:
                text = _summary_text(item)
                if text:
                    self._thinking(out, state, text)
            block = reasoning_block(item.get("id"), item.get("encrypted_content"), "")
            if isinstance(block, ThinkingBlock) and block.signature:
                out.append(BlockDelta(state[0], "signature", block.signature))
            elif isinstance(block, RedactedThinkingBlock):
                out.append(BlockDelta(state[0], "signature", block.data))
            self._close(out, key)

    def close(self) -> list[Event]:
        if self._done:
            return []
        self._done = True
        return [StreamError("bad_gateway", "upstream stream ended before response.completed", 502)]
