"""Server-Sent Events framing (WHATWG rules: LF, CRLF or CR line ends, a blank line ends
an event, `data` lines joined with LF, one optional space after the colon, comment lines
starting with `:` ignored).

One implementation for the codecs' stream decoders (SSEParser) and the passthrough taps
in gateway/proxy/streams.py (normalise_newlines, parse_event), so `data:value` and
`data: value` mean the same everywhere."""

from __future__ import annotations


def normalise_newlines(buf: bytes) -> bytes:
    """CRLF and CR to LF. A trailing lone CR may be half of a CRLF: it is kept for the next
    call (callers only cut complete events, which end in LF)."""
    if b"\r" not in buf:
        return buf
    tail = b"\r" if buf.endswith(b"\r") else b""
    return buf[: len(buf) - len(tail)].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail


def parse_event(raw: bytes) -> tuple[str | None, bytes | None]:
    """One complete event (LF line ends, without its blank line) -> (event name, data).
    Data is None when the event has no `data` line (a comment or keep-alive)."""
    if raw[:5] == b"data:" and b"\n" not in raw:  # the common one-line event
        return None, raw[6:] if raw[5:6] == b" " else raw[5:]
    event: str | None = None
    data: list[bytes] | None = None
    for line in raw.split(b"\n"):
        if not line or line[0:1] == b":":
            continue
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            if data is None:
                data = [value]
            else:
                data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    if data is None:
        return event, None
    return event, data[0] if len(data) == 1 else b"\n".join(data)


class SSEParser:
    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        """Return complete (event name, data bytes) pairs found so far."""
        buf = normalise_newlines(self._buf + chunk if self._buf else chunk)
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._buf = buf
            return []
        self._buf = buf[end + 2:]
        out: list[tuple[str | None, bytes]] = []
        for raw in buf[:end].split(b"\n\n"):
            if raw:
                event, data = parse_event(raw)
                if data is not None or event is not None:
                    out.append((event, data if data is not None else b""))
        return out

    def pending(self) -> bool:
        """True when bytes of an unfinished event are buffered (stream cut mid-event)."""
        return bool(self._buf.strip())
