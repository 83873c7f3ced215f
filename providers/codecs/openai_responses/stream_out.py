"""OpenAI Responses API: the stream encoder (canonical events -> client bytes)."""

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
    RedactedThinkingBlock,
    Request,
    ServerToolBlock,
    StreamError,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
    merge_usage,
)
from ..sequencer import BlockSequencer
from .wire import (
    REDACTED,
    _call_item,
    _echo_tools,
    _message_item,
    _namespace_map,
    _new_id,
    _reasoning_item,
    _status_for,
    client_response_id,
    response_object,
    split_signature,
    usage_to,
    web_search_item,
)


class ResponsesStreamEncoder(StreamEncoder):
    """Canonical events -> the Responses SSE sequence the official SDKs and Codex parse."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self._ns_map = _namespace_map(request.tools)
        self._tools = _echo_tools(request)
        self._seq = 0
        self._id = ""
        self._created_at = int(time.time())
        self._started = False
        self._finished = False
        self._output: list[dict] = []
        self._blocks: dict[int, dict] = {}
        self._usage = Usage()
        self._stop_reason = None
        self._blocks_in_order = BlockSequencer()  # an output item's arguments are final at output_item.done

    def _emit(self, kind: str, payload: dict) -> bytes:
        data = orjson.dumps({"type": kind, "sequence_number": self._seq, **payload})
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    def _response(self, status: str, incomplete=None, error=None, with_usage=False) -> dict:
        return response_object(
            self._request,
            self._id,
            self._created_at,
            status,
            [i for i in self._output if i is not None],
            usage_to(self._usage) if with_usage else None,
            incomplete,
            error,
            self._tools,
        )

    def _start(self, ident: str | None) -> bytes:
        self._started = True
        self._id = client_response_id(ident)
        created = self._response("in_progress")
        return self._emit("response.created", {"response": created}) + self._emit(
            "response.in_progress", {"response": self._response("in_progress")}
        )

    def encode(self, event: Event) -> bytes:
        events = self._blocks_in_order.push(event)
        if len(events) == 1:
            return self._encode(events[0])
        return b"".join(self._encode(ev) for ev in events)

    def _encode(self, event: Event) -> bytes:
        if self._finished:
            return b""
        out = b""
        if not self._started:
            if isinstance(event, MessageStart):
                merge_usage(self._usage, event.usage)
                return self._start(event.id)
            if isinstance(event, Ping):
                return b": ping\n\n"
            out = self._start(None)
        if isinstance(event, BlockDelta):
            return out + self._delta(event)
        if isinstance(event, BlockStart):
            return out + self._block_start(event)
        if isinstance(event, BlockStop):
            return out + self._block_stop(event.index)
        if isinstance(event, MessageDelta):
            if event.stop_reason:
                self._stop_reason = event.stop_reason
            merge_usage(self._usage, event.usage)
            return out
        if isinstance(event, MessageStop):
            return out + self._complete()
        if isinstance(event, StreamError):
            return out + self._fail(event)
        if isinstance(event, Ping):
            return out + b": ping\n\n"
        if isinstance(event, MessageStart):
            merge_usage(self._usage, event.usage)
        return out

    # -- blocks
    def _block_start(self, ev: BlockStart) -> bytes:
        out = b""
        if ev.index in self._blocks:
            out += self._block_stop(ev.index)
        b = ev.block
        oi = len(self._output)
        st = {"oi": oi, "acc": "", "sig": "", "part": False}
        if isinstance(b, TextBlock):
            st["kind"] = "text"
            st["id"] = _new_id("msg_")
            item = {
                "id": st["id"],
                "type": "message",
                "status": "in_progress",
                "content": [],
                "role": "assistant",
            }
            out += self._emit("response.output_item.added", {"output_index": oi, "item": item})
            out += self._emit(
                "response.content_part.added",
                {
                    "item_id": st["id"],
                    "output_index": oi,
                    "content_index": 0,
                    "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""},
                },
            )
        elif isinstance(b, ToolUseBlock):
            st["kind"] = "call"
            st["id"] = _new_id("fc_")
            st["call_id"], st["name"] = b.id, b.name
            st["initial"] = b.input
            out += self._emit(
                "response.output_item.added",
                {
                    "output_index": oi,
                    "item": _call_item(st["id"], b.id, b.name, "", "in_progress", self._ns_map),
                },
            )
        elif isinstance(b, (ThinkingBlock, RedactedThinkingBlock)):
            st["kind"] = "reasoning"
            st["id"] = _new_id("rs_")
            if isinstance(b, RedactedThinkingBlock):
                st["redacted"] = b.data
            elif b.signature:
                st["sig"] = b.signature
            out += self._emit(
                "response.output_item.added",
                {"output_index": oi, "item": {"id": st["id"], "type": "reasoning", "summary": []}},
            )
        elif isinstance(b, ServerToolBlock):
            if b.result is None and b.name == "web_search":  # arrives whole: the item and its events at once
                item = web_search_item(b)
                ident = {"output_index": oi, "item_id": item["id"]}
                self._output.append(item)
                return (
                    out
                    + self._emit(
                        "response.output_item.added",
                        {"output_index": oi, "item": dict(item, status="in_progress")},
                    )
                    + self._emit("response.web_search_call.in_progress", ident)
                    + self._emit("response.web_search_call.searching", ident)
                    + self._emit("response.web_search_call.completed", ident)
                    + self._emit("response.output_item.done", {"output_index": oi, "item": item})
                )
            return out  # its result has no Responses item: the model's text carries it
        else:
            return out  # images and tool results never appear in model output
        self._output.append(None)
        self._blocks[ev.index] = st
        if isinstance(b, TextBlock) and b.text:
            out += self._delta(BlockDelta(ev.index, "text", b.text))
        elif isinstance(b, ThinkingBlock) and b.thinking:
            out += self._delta(BlockDelta(ev.index, "thinking", b.thinking))
        return out

    def _delta(self, ev: BlockDelta) -> bytes:
        st = self._blocks.get(ev.index)
        if st is None or not ev.value:
            return b""
        kind = st["kind"]
        if kind == "text" and ev.kind == "text":
            st["acc"] += ev.value
            return self._emit(
                "response.output_text.delta",
                {
                    "item_id": st["id"],
                    "output_index": st["oi"],
                    "content_index": 0,
                    "delta": ev.value,
                    "logprobs": [],
                },
            )
        if kind == "call" and ev.kind == "json":
            st["acc"] += ev.value
            return self._emit(
                "response.function_call_arguments.delta",
                {"item_id": st["id"], "output_index": st["oi"], "delta": ev.value},
            )
        if kind == "reasoning":
            if ev.kind == "signature":
                st["sig"] += ev.value
                return b""
            if ev.kind == "thinking":
                out = b""
                if not st["part"]:
                    st["part"] = True
                    out += self._emit(
                        "response.reasoning_summary_part.added",
                        {
                            "item_id": st["id"],
                            "output_index": st["oi"],
                            "summary_index": 0,
                            "part": {"type": "summary_text", "text": ""},
                        },
                    )
                st["acc"] += ev.value
                return out + self._emit(
                    "response.reasoning_summary_text.delta",
                    {"item_id": st["id"], "output_index": st["oi"], "summary_index": 0, "delta": ev.value},
                )
        return b""

    def _block_stop(self, index: int) -> bytes:
        st = self._blocks.pop(index, None)
        if st is None:
            return b""
        oi, item_id, acc = st["oi"], st["id"], st["acc"]
        kind = st["kind"]
        out = b""
        if kind == "text":
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": acc}
            out += self._emit(
                "response.output_text.done",
                {"item_id": item_id, "output_index": oi, "content_index": 0, "text": acc, "logprobs": []},
            )
            out += self._emit(
                "response.content_part.done",
                {"item_id": item_id, "output_index": oi, "content_index": 0, "part": part},
            )
            item = _message_item(item_id, acc, "completed")
        elif kind == "call":
            if not acc:
                acc = orjson.dumps(st["initial"] or {}).decode()
                out += self._emit(
                    "response.function_call_arguments.delta",
                    {"item_id": item_id, "output_index": oi, "delta": acc},
                )
            item = _call_item(item_id, st["call_id"], st["name"], acc, "completed", self._ns_map)
            out += self._emit(
                "response.function_call_arguments.done",
                {"item_id": item_id, "output_index": oi, "name": item["name"], "arguments": acc},
            )
        else:
            if st["part"]:
                out += self._emit(
                    "response.reasoning_summary_text.done",
                    {"item_id": item_id, "output_index": oi, "summary_index": 0, "text": acc},
                )
                out += self._emit(
                    "response.reasoning_summary_part.done",
                    {
                        "item_id": item_id,
                        "output_index": oi,
                        "summary_index": 0,
                        "part": {"type": "summary_text", "text": acc},
                    },
                )
            if "redacted" in st:
                enc = REDACTED + st["redacted"]
            else:
                enc = split_signature(st["sig"])[1]
            item = _reasoning_item(item_id, acc, enc)
        self._output[oi] = item
        return out + self._emit("response.output_item.done", {"output_index": oi, "item": item})

    def _close_blocks(self) -> bytes:
        out = b""
        for index in list(self._blocks):
            out += self._block_stop(index)
        return out

    # -- end
    def _complete(self) -> bytes:
        out = self._close_blocks()
        self._finished = True
        status, incomplete = _status_for(self._stop_reason)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._emit(kind, {"response": self._response(status, incomplete, with_usage=True)})

    def _fail(self, err: StreamError) -> bytes:
        out = self._close_blocks()
        self._finished = True
        code = _FAILED_CODES.get(err.type, "server_error")
        out += self._emit("error", {"code": code, "message": err.message, "param": None})
        failed = self._response("failed", error={"code": code, "message": err.message}, with_usage=True)
        return out + self._emit("response.failed", {"response": failed})

    def close(self) -> bytes:
        return b""


# response.failed error codes (Codex keys context-window handling on context_length_exceeded)
_FAILED_CODES = {
    "context_length": "context_length_exceeded",
    "rate_limit": "rate_limit_exceeded",
    "invalid_request": "invalid_prompt",
    "unsupported": "invalid_prompt",
}
