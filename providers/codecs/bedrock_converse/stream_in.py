"""AWS Bedrock Runtime Converse API: the stream decoder (upstream bytes -> canonical events)."""

from __future__ import annotations

from ...aws import EventStreamDecodeError, EventStreamDecoder
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
    Usage,
)
from ..shared import new_id
from .wire import _STOP_REASONS, _exception_error, usage_from_bedrock


class BedrockStreamDecoder(StreamDecoder):
    """Event-stream bytes -> canonical events.

    Bedrock block indexes map to canonical indexes in order of appearance. Text and
    reasoning blocks have no contentBlockStart: they open on their first delta.
    Redacted reasoning is buffered until its contentBlockStop (the canonical block
    carries its data at BlockStart). messageStop only records the stop reason: the
    usage comes in the metadata frame after it, so MessageDelta + MessageStop are
    emitted on metadata (or at close() if metadata never comes).
    """

    def __init__(self, model: str = "") -> None:
        self._frames = EventStreamDecoder()
        self._model = model
        self._started = False
        self._finished = False
        self._next_index = 0
        self._blocks: dict[int, tuple[int, str]] = {}  # bedrock index -> (canonical index, kind)
        self._open: set[int] = set()  # bedrock indexes currently open
        self._redacted: dict[int, list[str]] = {}
        self._stop_reason = None
        self._stop_sequence = None
        self._stopped = False
        self._usage: Usage | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        if self._finished:
            return []
        out: list[Event] = []
        try:
            frames = self._frames.feed(chunk)
        except EventStreamDecodeError as exc:
            self._finished = True
            return [StreamError("bad_gateway", "Malformed Bedrock event stream: %s" % exc, 502)]
        for event_type, message_type, payload in frames:
            if self._finished:
                break
            if message_type != "event":
                self._finished = True
                message = str(
                    payload.get("message") or payload.get("Message") or event_type or "stream error"
                )
                err = _exception_error(event_type, message)
                out.append(StreamError(err.type, message, err.status))
                break
            self._event(event_type, payload, out)
        return out

    def close(self) -> list[Event]:
        if self._finished:
            return []
        self._finished = True
        if self._stopped:
            out: list[Event] = []
            self._finish(out)
            return out
        return [StreamError("bad_gateway", "Bedrock stream ended before messageStop.", 502)]

    # -- internals

    def _start(self, out: list[Event]) -> None:
        if not self._started:
            self._started = True
            out.append(MessageStart(id=new_id("msg_bdrk_"), model=self._model))

    def _open_block(self, bidx: int, kind: str, block: Block, out: list[Event]) -> int:
        # Blocks do not overlap in Bedrock streams; close a stray open one defensively.
        for other in [i for i in self._open if i != bidx]:
            self._stop_block(other, out)
        cidx = self._next_index
        self._next_index += 1
        self._blocks[bidx] = (cidx, kind)
        self._open.add(bidx)
        out.append(BlockStart(cidx, block))
        return cidx

    def _index_for(self, bidx: int, kind: str, out: list[Event]) -> int:
        known = self._blocks.get(bidx)
        if known is not None and bidx in self._open and known[1] == kind:
            return known[0]
        if known is not None and bidx in self._open:
            self._stop_block(bidx, out)
        block: Block
        if kind == "text":
            block = TextBlock("")
        elif kind == "thinking":
            block = ThinkingBlock("")
        else:  # tool input without contentBlockStart: keep the input, invent an id
            block = ToolUseBlock(id=new_id("tooluse_", 22), name="", input={})
        return self._open_block(bidx, kind, block, out)

    def _stop_block(self, bidx: int, out: list[Event]) -> None:
        if bidx in self._redacted:
            data = "".join(self._redacted.pop(bidx))
            cidx = self._next_index
            self._next_index += 1
            self._blocks[bidx] = (cidx, "redacted")
            out.append(BlockStart(cidx, RedactedThinkingBlock(data)))
            out.append(BlockStop(cidx))
            return
        if bidx in self._open:
            self._open.discard(bidx)
            out.append(BlockStop(self._blocks[bidx][0]))

    def _event(self, event_type: str, payload: dict, out: list[Event]) -> None:
        if event_type == "messageStart":
            self._start(out)
            return
        if event_type == "contentBlockStart":
            self._start(out)
            bidx = int(payload.get("contentBlockIndex") or 0)
            tool = (payload.get("start") or {}).get("toolUse")
            if isinstance(tool, dict):
                self._open_block(
                    bidx,
                    "tool",
                    ToolUseBlock(
                        id=str(tool.get("toolUseId") or ""), name=str(tool.get("name") or ""), input={}
                    ),
                    out,
                )
            return
        if event_type == "contentBlockDelta":
            self._start(out)
            bidx = int(payload.get("contentBlockIndex") or 0)
            delta = payload.get("delta") or {}
            if "text" in delta:
                text = delta.get("text")
                if text:
                    out.append(BlockDelta(self._index_for(bidx, "text", out), "text", str(text)))
            elif "toolUse" in delta:
                fragment = (delta.get("toolUse") or {}).get("input")
                if fragment:
                    out.append(BlockDelta(self._index_for(bidx, "tool", out), "json", str(fragment)))
            elif "reasoningContent" in delta:
                rc = delta.get("reasoningContent") or {}
                if "redactedContent" in rc:
                    self._redacted.setdefault(bidx, []).append(str(rc.get("redactedContent") or ""))
                    return
                if rc.get("text"):
                    out.append(
                        BlockDelta(self._index_for(bidx, "thinking", out), "thinking", str(rc["text"]))
                    )
                if rc.get("signature"):
                    out.append(
                        BlockDelta(self._index_for(bidx, "thinking", out), "signature", str(rc["signature"]))
                    )
            # citation / toolResult / image deltas have no canonical form: ignored.
            return
        if event_type == "contentBlockStop":
            self._stop_block(int(payload.get("contentBlockIndex") or 0), out)
            return
        if event_type == "messageStop":
            self._start(out)
            for bidx in list(self._open) + list(self._redacted):
                self._stop_block(bidx, out)
            self._stopped = True
            self._stop_reason = _STOP_REASONS.get(str(payload.get("stopReason") or ""), "end_turn")
            amrf = payload.get("additionalModelResponseFields")
            if isinstance(amrf, dict) and isinstance(amrf.get("stop_sequence"), str):
                self._stop_sequence = amrf["stop_sequence"]
            return
        if event_type == "metadata":
            self._usage = usage_from_bedrock(payload.get("usage"))
            if self._stopped:
                self._finished = True
                self._finish(out)
            return
        # unknown event types are ignored (forward compatibility)

    def _finish(self, out: list[Event]) -> None:
        out.append(
            MessageDelta(stop_reason=self._stop_reason, stop_sequence=self._stop_sequence, usage=self._usage)
        )
        out.append(MessageStop())
