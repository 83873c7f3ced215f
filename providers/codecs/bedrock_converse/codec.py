"""AWS Bedrock Runtime Converse API: the codec (the methods live in the modules named after their part)."""

from __future__ import annotations

from ..base import CodecDefaults, StreamDecoder, StreamEncoder
from ..canonical import Request
from . import errors, request, response, wire
from .stream_in import BedrockStreamDecoder


class BedrockConverseCodec(CodecDefaults):
    name = "bedrock_converse"
    stream_media_type = "application/vnd.amazon.eventstream"

    def stream_decoder(self, *, model: str = "") -> StreamDecoder:
        return BedrockStreamDecoder(model)

    def stream_encoder(self, request: Request) -> StreamEncoder:
        # Bedrock is never a front door in Junction; an encoder would have to write binary
        # event-stream frames by hand (botocore only decodes them).
        raise NotImplementedError("bedrock_converse is an upstream-only format")

    encode_request = request.encode_request
    _tool_result = request._tool_result
    _thinking = request._thinking
    _tool_config = request._tool_config
    decode_request = request.decode_request
    _decode_block = wire._decode_block
    decode_response = response.decode_response
    encode_response = response.encode_response
    encode_error = errors.encode_error
    decode_error = errors.decode_error


CODEC = BedrockConverseCodec()
