"""Incremental Server-Sent Events framing (WHATWG rules: LF, CRLF or CR line ends,
blank line ends an event, `data` lines joined with LF, comments ignored)."""

from __future__ import annotations


class SSEParser:
    __slots__ = ("_buf", "_event", "_data")

    def __init__(self) -> None:
        self._buf = b""
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        """Return complete (event name, data bytes) pairs found so far."""
        buf = self._buf + chunk
        if b"\r" in buf:
            # Normalise CRLF/CR; a trailing lone CR may be half of a CRLF, keep it.
            tail = b"\r" if buf.endswith(b"\r") else b""
            buf = buf[: len(buf) - len(tail)].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail
        out: list[tuple[str | None, bytes]] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            if not line:
                if self._data or self._event is not None:
                    out.append((self._event, b"\n".join(self._data)))
                self._event, self._data = None, []
                continue
            if line[0:1] == b":":
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
        self._buf = buf[start:]
        return out

    def pending(self) -> bool:
        """True when bytes of an unfinished event are buffered (stream cut mid-event)."""
        return bool(self._buf.strip() or self._data)
