"""Small ASGI helpers for the hot path (no Django request machinery here)."""

from __future__ import annotations

import orjson


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


async def read_body(receive, limit: int, content_length: int | None) -> bytes:
    if content_length is not None and content_length > limit:
        raise BodyTooLarge()
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge()
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    try:
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    except UnicodeEncodeError:  # a value no header can carry must not fail (or hang) the response
        from urllib.parse import quote

        return [(k.encode("latin-1"), quote(v, safe="".join(map(chr, range(0x20, 0x7f)))).encode())
                for k, v in headers.items()]


async def send_bytes(send, status: int, body: bytes, content_type: str = "application/json",
                     headers: dict[str, str] | None = None) -> None:
    raw = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    if headers:
        raw += encode_headers(headers)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_json(send, status: int, obj, headers: dict[str, str] | None = None) -> None:
    await send_bytes(send, status, orjson.dumps(obj), "application/json", headers)
