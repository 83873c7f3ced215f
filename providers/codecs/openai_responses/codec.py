"""OpenAI Responses API: the codec (the methods live in the modules named after their part)."""

from __future__ import annotations

from ..base import CodecDefaults, StreamDecoder, StreamEncoder
from ..canonical import Request
from . import errors, request, response
from .request import NAME
from .stream_in import ResponsesStreamDecoder
from .stream_out import ResponsesStreamEncoder


class OpenAIResponsesCodec(CodecDefaults):
    name = NAME

    # ------------------------------------------------------------------ streams
    def stream_decoder(self, *, model: str = "") -> StreamDecoder:
        return ResponsesStreamDecoder()

    def stream_encoder(self, request: Request) -> StreamEncoder:
        return ResponsesStreamEncoder(request)

    decode_request = request.decode_request
    encode_request = request.encode_request
    decode_response = response.decode_response
    encode_response = response.encode_response
    encode_error = errors.encode_error
    decode_error = errors.decode_error


CODEC = OpenAIResponsesCodec()
