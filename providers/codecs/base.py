"""The codec contract: one class per wire format, both directions, no I/O.

A codec serves as a *front door* (decode what a client sends, encode what goes
back to it) and as an *upstream dialect* (encode what we send a provider, decode
what it answers).

The contract is the `Codec` Protocol below; every format's codec class satisfies it
exactly (same parameters, same keyword-only options), which `make lint` checks with
mypy (providers/codecs/contract.py) and tests/codecs/test_contract.py at run time. The
classes do not inherit the Protocol (that would make the check nominal and vacuous);
they share the defaults in `CodecDefaults`. Options a format does not use are accepted and
ignored, so callers never need to know which codec they hold.

Streams: `stream_decoder()` turns raw upstream bytes (any chunking) into canonical
events; `stream_encoder()` turns canonical events into the bytes a client of this
format expects. Both are stateful per stream.
"""

from __future__ import annotations

from typing import Protocol

from .canonical import Event, Request, Response, Usage
from .errors import GatewayError


class StreamDecoder:
    """Feed raw bytes as they arrive; get canonical events back."""

    def feed(self, chunk: bytes) -> list[Event]:
        raise NotImplementedError

    def close(self) -> list[Event]:
        """Upstream ended. Return trailing events; a stream that ended without its
        terminal event yields a StreamError (never a silent truncation)."""
        raise NotImplementedError


class StreamEncoder:
    """Turn canonical events into client wire bytes."""

    def encode(self, event: Event) -> bytes:
        raise NotImplementedError

    def close(self) -> bytes:
        """Trailer after the last event (e.g. `data: [DONE]`), b"" if none."""
        return b""


class Codec(Protocol):
    name: str
    stream_media_type: str

    # -- requests
    def decode_request(self, body: dict, *, require_max_tokens: bool = True) -> Request:
        """`require_max_tokens=False` serves bodies that may lack it (Anthropic's
        `/v1/messages/count_tokens`); formats without a required max_tokens ignore it."""
        ...

    def encode_request(self, request: Request) -> dict:
        """Body for an upstream of this format; `request.model` is the upstream model id."""
        ...

    # -- responses
    def decode_response(self, body: dict, *, model: str = "") -> Response:
        """`model`: the upstream model id, for formats whose body does not name it (Bedrock)."""
        ...

    def encode_response(self, response: Response, request: Request) -> dict:
        ...

    def usage_from_response(self, body: dict) -> Usage:
        ...

    # -- streams
    def stream_decoder(self, *, model: str = "") -> StreamDecoder:
        """`model` as for decode_response."""
        ...

    def stream_encoder(self, request: Request) -> StreamEncoder:
        """`request` is the client's decoded request (model alias, include_usage wish...)."""
        ...

    # -- errors
    def encode_error(self, error: GatewayError) -> tuple[int, dict]:
        ...

    def decode_error(self, status: int, body: bytes) -> GatewayError:
        """Turn an upstream error response of this format into a GatewayError,
        keeping the upstream message. Must not raise on garbage bodies."""
        ...


class CodecDefaults:
    """What most codecs share; a codec class inherits it and overrides as needed."""

    stream_media_type: str = "text/event-stream"

    def decode_response(self, body: dict, *, model: str = "") -> Response:
        raise NotImplementedError

    def usage_from_response(self, body: dict) -> Usage:
        return self.decode_response(body).usage
