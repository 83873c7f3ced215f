"""Anthropic Messages API: the codec (the methods live in the modules named after their part)."""

from __future__ import annotations

from ..base import CodecDefaults, StreamDecoder, StreamEncoder
from ..canonical import Request
from . import errors, request, response
from .request import FORMAT
from .stream_in import AnthropicStreamDecoder
from .stream_out import AnthropicStreamEncoder


class AnthropicMessagesCodec(CodecDefaults):
    name = FORMAT
    stream_media_type = "text/event-stream"

    def stream_decoder(self, *, model: str = "") -> StreamDecoder:
        return AnthropicStreamDecoder()

    def stream_encoder(self, request: Request) -> StreamEncoder:
        return AnthropicStreamEncoder(request)

    decode_request = request.decode_request
    encode_request = request.encode_request
    decode_response = response.decode_response
    encode_response = response.encode_response
    encode_error = errors.encode_error
    decode_error = errors.decode_error


CODEC = AnthropicMessagesCodec()
