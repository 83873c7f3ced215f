"""Make a canonical event stream block-sequential for encoders whose wire format has
one block open at a time (Anthropic content blocks, Responses output items, Ollama tool
lines).

OpenAI-compatible servers may interleave the argument fragments of parallel tool calls
(index 0, 1, 0, 1 ...). The OpenAI chat decoder never drops such a fragment, so a
`BlockDelta` can arrive after its block's `BlockStop`. A tool call is only known to be
complete when something else follows (text, the end of the message), so:

- the stop of a streaming tool block is deferred; its late fragments still stream;
- tool blocks that start while one is deferred are held whole (start, fragments) and
  released, each closed, once the message moves on (MessageDelta/MessageStop/error or
  a non-tool block).

A purely sequential upstream (OpenAI itself) sees the same bytes, except that a second
parallel call reaches the client in one piece when the first call ends instead of
fragment by fragment.
"""

from __future__ import annotations

from .canonical import BlockDelta, BlockStart, BlockStop, Ping, ToolUseBlock


class BlockSequencer:
    __slots__ = ("_live", "_deferred", "_held", "_released")

    def __init__(self) -> None:
        self._live = -1  # canonical index of the tool block streaming to the client, -1 if none
        self._deferred = False  # its BlockStop came and is held back
        self._held: dict[int, list] = {}  # tool blocks started while _live was deferred
        self._released: set[int] = set()  # held blocks already written (closed) to the client

    def push(self, event) -> list:
        cls = type(event)
        if cls is BlockDelta:
            if not self._held or event.index not in self._held:
                if event.index in self._released:
                    return []  # a fragment after its call was written whole: the wire has no place for it
                return [event]
            self._held[event.index].append(event)
            return []
        if cls is BlockStart:
            if isinstance(event.block, ToolUseBlock):
                if self._live >= 0 and self._deferred:
                    self._held[event.index] = [event]
                    return []
                out = self._release()
                self._live, self._deferred = event.index, False
                out.append(event)
                return out
            out = self._release()
            out.append(event)
            return out
        if cls is BlockStop:
            if event.index == self._live:
                self._deferred = True
                return []
            if event.index in self._held:
                return []  # closed when released
            return [event]
        if cls is Ping:
            return [event]
        out = self._release()
        out.append(event)
        return out

    def _release(self) -> list:
        out: list = []
        if self._live >= 0 and self._deferred:
            out.append(BlockStop(self._live))
            self._released.add(self._live)
        self._live, self._deferred = -1, False
        if self._held:
            for index, events in self._held.items():
                out += events
                out.append(BlockStop(index))
                self._released.add(index)
            self._held = {}
        return out
