"""OpenAI Chat Completions: the codec (the methods live in the modules named after their part)."""

from __future__ import annotations

from ..base import CodecDefaults, StreamDecoder, StreamEncoder
from ..canonical import Request
from . import errors, request, response
from .request import FORMAT
from .stream_in import OpenAIChatStreamDecoder
from .stream_out import OpenAIChatStreamEncoder


class OpenAIChatCodec(CodecDefaults):
    name = FORMAT

    def __init__(self, *, send_cache_control: bool = False, send_thinking: bool = True):
        # send_cache_control: emit cache_control markers even for requests that came
        # from another format (an adapter for OpenRouter/LiteLLM in front of Claude
        # turns it on). Same-format requests always keep the client's markers.
        # send_thinking: echo thinking history as reasoning_content/thinking_blocks;
        # an adapter for an upstream that rejects unknown message fields turns it off.
        self.send_cache_control = send_cache_control
        self.send_thinking = send_thinking

    def stream_decoder(self, *, model: str = "") -> StreamDecoder:
        return OpenAIChatStreamDecoder()

    def stream_encoder(self, request: Request) -> StreamEncoder:
        return OpenAIChatStreamEncoder(request)

    decode_request = request.decode_request
    encode_request = request.encode_request
    decode_response = response.decode_response
    usage_from_response = response.usage_from_response
    encode_response = response.encode_response
    encode_error = errors.encode_error
    decode_error = errors.decode_error


CODEC = OpenAIChatCodec()
