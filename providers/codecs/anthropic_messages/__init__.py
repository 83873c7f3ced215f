"""Anthropic Messages API codec (`POST /v1/messages`), both directions.

Front door: decode what Claude Code / opencode / aider / Goose send, encode the
answer (JSON or SSE) exactly as api.anthropic.com would.
Upstream dialect: encode a canonical Request for api.anthropic.com, decode its
Message objects, SSE streams and error bodies.

Token convention (see canonical.py): Anthropic's `input_tokens` EXCLUDES cache
reads and writes, canonical `input_tokens` INCLUDES them. `_usage_in` and
`_usage_out` are the only places that convert.

Same-format traffic normally takes the passthrough path and never reaches this
module; when it does (a route that must rewrite the body), everything the
canonical model cannot hold is carried in `Request.extra` and restored here
only when `request.source_format == "anthropic_messages"`.
"""

from __future__ import annotations

from .codec import CODEC, AnthropicMessagesCodec  # noqa: F401
from .errors import _SPACES, _TAGS, _anthropic_type_for_status, _excerpt  # noqa: F401
from .request import (  # noqa: F401
    _REQUEST_KEYS,
    _TOOL_KEYS,
    ANSWER_ROOM,
    DEFAULT_MAX_TOKENS,
    EFFORT_BUDGETS,
    FORMAT,
    MIN_THINKING_BUDGET,
    _decode_block,
    _decode_tool,
    _decode_tool_choice,
    _encode_tool,
    _image_block,
    _is_number,
    _system_blocks,
    _text_block,
    _thinking_budget,
)
from .stream_in import AnthropicStreamDecoder  # noqa: F401
from .stream_out import (  # noqa: F401
    _DELTA_HEAD,
    _DELTA_KINDS,
    _DELTA_TAIL,
    _PING,
    _STOP,
    AnthropicStreamEncoder,
    _event,
)
from .wire import (  # noqa: F401
    _CONTEXT_PHRASES,
    _ERROR_IN,
    _ERROR_OUT,
    _ID_BAD_CHARS,
    _ID_OK,
    _STOP_IN,
    _STOP_OUT,
    _client_message,
    _encode_block,
    _encode_image,
    _encode_text,
    _message_id,
    _safe_id,
    _server_result,
    _usage_in,
    _usage_out,
)
