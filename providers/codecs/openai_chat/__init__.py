"""OpenAI Chat Completions (`POST /v1/chat/completions`), both directions.

Front door for Goose, opencode, aider and every OpenAI-compatible client; upstream
dialect for OpenAI, Azure, OpenRouter, vLLM, llama.cpp, LM Studio, Ollama's /v1 and
LiteLLM. Pure: no Django, no I/O. JSON through orjson (this runs on every
translated request and on every stream chunk).

Conventions beyond the official API that are understood in both directions:
- assistant `reasoning_content` (DeepSeek, vLLM, LiteLLM) or `reasoning` (OpenRouter,
  newer vLLM) carries thinking text; LiteLLM's `thinking_blocks`
  (`[{type: "thinking", thinking, signature}]`, `{type: "redacted_thinking", data}`)
  carries Anthropic signatures so a thinking conversation survives a round trip;
- `cache_control` on content parts and tools (LiteLLM / OpenRouter prompt caching);
- `usage.prompt_tokens_details.cache_write_tokens` and `usage.cost` (OpenRouter).
"""

from __future__ import annotations

from .codec import CODEC, OpenAIChatCodec  # noqa: F401
from .errors import _TAG_RE, _excerpt  # noqa: F401
from .request import (  # noqa: F401
    _FOREIGN_EXTRAS_REFUSED,
    _KNOWN_FIELDS,
    FORMAT,
    _bad,
    _decode_parts,
    _dict_field,
    _effort_for_budget,
    _float_field,
    _image_from_part,
    _int_field,
    _tool_choice_in,
    _tool_in,
    _tool_use_in,
    is_reasoning_model,
)
from .response import _arguments_in_lenient  # noqa: F401
from .stream_in import OpenAIChatStreamDecoder, _stream_error_from, _ToolCall  # noqa: F401
from .stream_out import _DONE, _FIRST_DELTA, OpenAIChatStreamEncoder  # noqa: F401
from .wire import (  # noqa: F401
    _CONTEXT_PHRASES,
    _ERROR_WIRE,
    _FINISH_TO_STOP,
    _RAW_ARGS,
    _STOP_TO_FINISH,
    _WIRE_ERROR_TYPES,
    _arguments_out,
    _classify,
    _dumps_str,
    _encode_usage,
    _error_fields,
    _finish_reason,
    _new_id,
    _number,
    _stop_reason,
    _thinking_in,
    _thinking_out,
    decode_usage,
)
