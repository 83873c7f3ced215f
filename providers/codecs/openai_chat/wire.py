"""OpenAI Chat Completions: wire constants and helpers shared by the parts of this format."""

from __future__ import annotations

import orjson

from ..canonical import Block, RedactedThinkingBlock, ThinkingBlock, ToolUseBlock, Usage
from ..errors import error_type_for_status
from ..shared import CONTEXT_PHRASES, mentions_context_overflow
from ..shared import new_id as _new_id  # noqa: F401 (the parts of this format import it from here)

_FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


_STOP_TO_FINISH = {
    "end_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "stop_sequence": "stop",
    "refusal": "content_filter",
    "pause_turn": "stop",
    "error": "stop",
}


# canonical error type -> (OpenAI error.type, default error.code)
_ERROR_WIRE = {
    "invalid_request": ("invalid_request_error", None),
    "unsupported": ("invalid_request_error", None),
    "context_length": ("invalid_request_error", "context_length_exceeded"),
    "authentication": ("authentication_error", "invalid_api_key"),
    "permission": ("permission_error", None),
    "not_found": ("not_found_error", "model_not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit": ("rate_limit_error", "rate_limit_exceeded"),
    "timeout": ("timeout_error", "timeout"),
    # OpenAI itself names every 5xx "server_error" (see tests/fakes/openai.py).
    "api_error": ("server_error", None),
    "bad_gateway": ("server_error", "bad_gateway"),
    "overloaded": ("server_error", "overloaded"),
}


# upstream error.type (OpenAI and look-alikes) -> canonical type, when no HTTP status is known
_WIRE_ERROR_TYPES = {
    "invalid_request_error": "invalid_request",
    "authentication_error": "authentication",
    "permission_error": "permission",
    "not_found_error": "not_found",
    "rate_limit_error": "rate_limit",
    "requests": "rate_limit",
    "tokens": "rate_limit",
    "insufficient_quota": "rate_limit",
    "server_error": "api_error",
    "api_error": "api_error",
    "overloaded_error": "overloaded",
    "timeout_error": "timeout",
}


_CONTEXT_PHRASES = CONTEXT_PHRASES + (
    "maximum context length",
    "context_length_exceeded",
    "exceed_context_size",
    "exceeds the available context size",
    "prompt is too long",
)


_RAW_ARGS = "_raw_arguments"


def _dumps_str(value) -> str:
    return orjson.dumps(value).decode()


def _arguments_out(block: ToolUseBlock) -> str:
    raw = block.input.get(_RAW_ARGS) if len(block.input) == 1 else None
    return raw if isinstance(raw, str) else _dumps_str(block.input)


def _number(v) -> int:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0


def decode_usage(u) -> Usage | None:
    """An OpenAI-style usage object (OpenRouter's cost, DeepSeek's cache hits included)
    as canonical usage; None when there is none."""
    if not isinstance(u, dict):
        return None
    prompt = u.get("prompt_tokens_details")
    completion = u.get("completion_tokens_details")
    prompt = prompt if isinstance(prompt, dict) else {}
    completion = completion if isinstance(completion, dict) else {}
    cost = u.get("cost")
    return Usage(
        input_tokens=_number(u.get("prompt_tokens")),
        output_tokens=_number(u.get("completion_tokens")),
        # DeepSeek reports cache hits as prompt_cache_hit_tokens
        cache_read_tokens=_number(prompt.get("cached_tokens")) or _number(u.get("prompt_cache_hit_tokens")),
        cache_write_tokens=_number(prompt.get("cache_write_tokens")),
        reasoning_tokens=_number(completion.get("reasoning_tokens")),
        cost=float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
    )


def _encode_usage(u: Usage | None) -> dict:
    u = u or Usage()
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {
            "cached_tokens": u.cache_read_tokens,
            "cache_write_tokens": u.cache_write_tokens,
        },
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def _stop_reason(finish, has_tools: bool) -> str:
    stop = _FINISH_TO_STOP.get(finish, "end_turn") if finish else "end_turn"
    # Some servers (older Ollama /v1, some llama.cpp builds) say "stop" next to tool
    # calls; an Anthropic client only runs tools when told tool_use.
    if has_tools and stop == "end_turn":
        return "tool_use"
    return stop


def _finish_reason(stop_reason, has_tools: bool) -> str:
    finish = _STOP_TO_FINISH.get(stop_reason, "stop") if stop_reason else "stop"
    # Agents (opencode's AI SDK, Goose) decide whether to run tools from this.
    if has_tools and finish == "stop":
        return "tool_calls"
    return finish


def _classify(status: int | None, message: str, code, wire_type) -> str:
    low = message.lower()
    if code == "context_length_exceeded" or mentions_context_overflow(low, _CONTEXT_PHRASES):
        return "context_length"
    if status and status >= 400:
        return error_type_for_status(status)
    if isinstance(wire_type, str) and wire_type in _WIRE_ERROR_TYPES:
        return _WIRE_ERROR_TYPES[wire_type]
    return "bad_gateway"


def _error_fields(obj) -> tuple[str | None, object, object, int | None]:
    """(message, type, code, status hint) from the error bodies OpenAI look-alikes send:
    OpenAI/LiteLLM/llama.cpp `{"error": {...}}`, vLLM `{"object": "error", "message"}`,
    `{"error": "text"}`, FastAPI `{"detail"}`, Gemini's compat layer `[{"error": {...}}]`,
    OpenRouter `{"error": {"code": 429, "metadata": {"raw", "provider_name"}}}`."""
    if isinstance(obj, list) and obj:
        obj = obj[0]
    if not isinstance(obj, dict):
        return None, None, None, None
    err = obj.get("error")
    if isinstance(err, str):
        return err, None, None, None
    if not isinstance(err, dict):
        if "message" in obj:
            err = obj
        elif "detail" in obj:
            detail = obj["detail"]
            return (detail if isinstance(detail, str) else _dumps_str(detail)), None, None, None
        else:
            return None, None, None, None
    message = err.get("message")
    if message is not None and not isinstance(message, str):
        message = _dumps_str(message)
    code = err.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else None
    meta = err.get("metadata")
    if isinstance(meta, dict) and meta.get("raw"):
        raw = meta["raw"] if isinstance(meta["raw"], str) else _dumps_str(meta["raw"])
        who = meta.get("provider_name")
        message = f"{message or 'error'} ({who + ': ' if isinstance(who, str) else ''}{raw[:300]})"
    return message, err.get("type"), code, status


def _thinking_out(thinking: list, message: dict) -> None:
    """reasoning_content for DeepSeek/vLLM-style peers; thinking_blocks (LiteLLM's
    convention) only when there is something reasoning_content cannot carry: a
    signature or redacted thinking."""
    text = "".join(b.thinking for b in thinking if isinstance(b, ThinkingBlock))
    if text:
        message["reasoning_content"] = text
    if any(isinstance(b, RedactedThinkingBlock) or b.signature for b in thinking):
        message["thinking_blocks"] = [
            {"type": "redacted_thinking", "data": b.data}
            if isinstance(b, RedactedThinkingBlock)
            else (
                {"type": "thinking", "thinking": b.thinking, "signature": b.signature}
                if b.signature
                else {"type": "thinking", "thinking": b.thinking}
            )
            for b in thinking
        ]


def _thinking_in(msg: dict) -> list[Block]:
    blocks: list[Block] = []
    tbs = msg.get("thinking_blocks")
    if isinstance(tbs, list) and tbs:
        for tb in tbs:
            if not isinstance(tb, dict):
                continue
            if tb.get("type") == "redacted_thinking":
                blocks.append(RedactedThinkingBlock(tb.get("data") or ""))
            else:
                text = tb.get("thinking")
                blocks.append(
                    ThinkingBlock(text if isinstance(text, str) else "", tb.get("signature") or None)
                )
        return blocks
    text = msg.get("reasoning_content") or msg.get("reasoning")
    if isinstance(text, str) and text:
        blocks.append(ThinkingBlock(text))
    return blocks
