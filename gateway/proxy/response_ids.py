"""Gateway-owned Responses API ids.

The id a Responses client sees (and later sends back as `previous_response_id` or in
`GET /v1/responses/{id}`) is generated here: 128 random bits, whatever the upstream
called its response (`chatcmpl-1` from a simple server would be guessable). The
upstream's id is replaced in the body and in every stream event, consistently.
"""

from __future__ import annotations

import secrets

import orjson


def new_response_id() -> str:
    return "resp_" + secrets.token_hex(16)


class ResponseIdRewriter:
    """Replaces the upstream's response id in a client-bound Responses SSE stream.

    The id is learnt from the first event carrying a `response` object (the first
    event of a well-formed stream, so only that one is parsed); from then on it is a
    byte replacement of the quoted id. Bytes after the last newline of a chunk wait
    for the next chunk, so an id split across chunks is still replaced."""

    __slots__ = ("new", "old", "pending")

    def __init__(self, new_id: str) -> None:
        self.new = orjson.dumps(new_id)
        self.old: bytes | None = None
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        if self.pending:
            data = self.pending + data
        cut = data.rfind(b"\n") + 1
        self.pending = data[cut:]
        return self._rewrite(data[:cut])

    def close(self, tail: bytes = b"") -> bytes:
        data, self.pending = self.pending + tail, b""
        return self._rewrite(data)

    def _rewrite(self, data: bytes) -> bytes:
        if not data:
            return data
        if self.old is None:
            self._learn(data)
        return data.replace(self.old, self.new) if self.old is not None else data

    def _learn(self, data: bytes) -> None:
        for line in data.split(b"\n"):
            if not line.startswith(b"data:") or b'"response"' not in line:
                continue
            try:
                event = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                continue
            response = event.get("response") if isinstance(event, dict) else None
            ident = response.get("id") if isinstance(response, dict) else None
            if isinstance(ident, str) and ident:
                self.old = orjson.dumps(ident)
                return
