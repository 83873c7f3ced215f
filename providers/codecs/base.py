"""The codec contract: one class per wire format, both directions, no I/O.

A codec serves as a *front door* (decode what a client sends, encode what goes
back to it) and as an *upstream dialect* (encode what we send a provider, decode
what it answers). The shape follows DRF's renderers/parsers: declarative
attributes plus a few methods to override.

Streams: `stream_decoder()` turns raw upstream bytes (any chunking) into canonical
events; `stream_encoder()` turns canonical events into the bytes a client of this
format expects. Both are stateful per stream.
"""

from __future__ import annotations

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


class Codec:
    name: str = ""
    stream_media_type: str = "text/event-stream"

    # -- requests
    def decode_request(self, body: dict) -> Request:
        raise NotImplementedError

    def encode_request(self, request: Request) -> dict:
        """Body for an upstream of this format; `request.model` is the upstream model id."""
        raise NotImplementedError

    # -- responses
    def decode_response(self, body: dict) -> Response:
        raise NotImplementedError

    def encode_response(self, response: Response, request: Request) -> dict:
        raise NotImplementedError

    # -- streams
    def stream_decoder(self) -> StreamDecoder:
        raise NotImplementedError

    def stream_encoder(self, request: Request) -> StreamEncoder:
        """`request` is the client's decoded request (model alias, include_usage wish...)."""
        raise NotImplementedError

    # -- errors
    def encode_error(self, error: GatewayError) -> tuple[int, dict]:
        raise NotImplementedError

    def decode_error(self, status: int, body: bytes) -> GatewayError:
        """Turn an upstream error response of this format into a GatewayError,
        keeping the upstream message. Must not raise on garbage bodies."""
        raise NotImplementedError

    def usage_from_response(self, body: dict) -> Usage:
        return self.decode_response(body).usage
