"""Anthropic Messages API: wire constants and helpers shared by the parts of this format."""

from __future__ import annotations

import re

from ..canonical import Block, ImageBlock, ServerToolBlock, TextBlock, Usage
from ..shared import CONTEXT_PHRASES, new_id

# canonical error type -> (HTTP status, Anthropic error type)
_ERROR_OUT = {
    "invalid_request": (400, "invalid_request_error"),
    "unsupported": (400, "invalid_request_error"),
    "context_length": (400, "invalid_request_error"),
    "authentication": (401, "authentication_error"),
    "permission": (403, "permission_error"),
    "not_found": (404, "not_found_error"),
    "request_too_large": (413, "request_too_large"),
    "rate_limit": (429, "rate_limit_error"),
    "api_error": (500, "api_error"),
    "bad_gateway": (502, "api_error"),
    "overloaded": (529, "overloaded_error"),
    "timeout": (504, "timeout_error"),
}


# Anthropic error type -> canonical error type
_ERROR_IN = {
    "invalid_request_error": "invalid_request",
    "authentication_error": "authentication",
    "permission_error": "permission",
    "billing_error": "permission",
    "not_found_error": "not_found",
    "request_too_large": "request_too_large",
    "rate_limit_error": "rate_limit",
    "api_error": "api_error",
    "overloaded_error": "overloaded",
    "timeout_error": "timeout",
}


_CONTEXT_PHRASES = CONTEXT_PHRASES + ("prompt is too long", "exceed context limit", "maximum context")


_STOP_IN = {
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "tool_use": "tool_use",
    "stop_sequence": "stop_sequence",
    "refusal": "refusal",
    "pause_turn": "pause_turn",
    # newer API versions; the canonical model has no such reason and the client
    # should react as to a length stop
    "model_context_window_exceeded": "max_tokens",
}


# canonical "error" has no Anthropic equivalent (the stream's error event carries failures)
_STOP_OUT = {"error": "end_turn"}


_ID_OK = re.compile(r"[A-Za-z0-9_-]+")


_ID_BAD_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def _usage_in(u: dict | None) -> Usage:
    """Anthropic usage object -> canonical Usage (input made all-inclusive)."""
    if not u:
        return Usage()
    i = u.get("input_tokens") or 0
    cw = u.get("cache_creation_input_tokens") or 0
    cr = u.get("cache_read_input_tokens") or 0
    return Usage(
        input_tokens=i + cw + cr,
        output_tokens=u.get("output_tokens") or 0,
        cache_read_tokens=cr,
        cache_write_tokens=cw,
    )


def _usage_out(u: Usage | None) -> dict:
    """Canonical Usage -> Anthropic usage object (input excludes cache reads/writes)."""
    if u is None:
        return {
            "input_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 0,
        }
    cw, cr = u.cache_write_tokens, u.cache_read_tokens
    return {
        "input_tokens": max(0, u.input_tokens - cw - cr),
        "cache_creation_input_tokens": cw,
        "cache_read_input_tokens": cr,
        "output_tokens": u.output_tokens,
    }


def _safe_id(ident: str) -> str:
    """Anthropic tool ids must match ^[a-zA-Z0-9_-]+$; other providers' ids may not
    (e.g. `functions.bash:0`). Same mapping for tool_use and tool_result keeps pairs."""
    if _ID_OK.fullmatch(ident):
        return ident
    return _ID_BAD_CHARS.sub("_", ident) or "toolu_empty"


def _encode_image(b: ImageBlock) -> dict:
    if b.data is not None:
        src = {"type": "base64", "media_type": b.media_type or "image/png", "data": b.data}
    else:
        url = b.url or ""
        if url.startswith("data:"):
            # OpenAI clients send inline images as data URLs; Anthropic wants base64 sources.
            head, _, data = url.partition(",")
            media_type = head[5:].split(";", 1)[0] or "image/png"
            src = {"type": "base64", "media_type": media_type, "data": data}
        else:
            src = {"type": "url", "url": url}
    out = {"type": "image", "source": src}
    if b.cache_control:
        out["cache_control"] = b.cache_control
    return out


def _encode_text(b: TextBlock) -> dict:
    out = {"type": "text", "text": b.text}
    if b.cache_control:
        out["cache_control"] = b.cache_control
    return out


def _server_result(raw: dict) -> ServerToolBlock:
    """web_search_tool_result (and other *_tool_result blocks of server tools)."""
    content = raw.get("content")
    name = raw["type"][: -len("_tool_result")]
    return ServerToolBlock(
        raw.get("tool_use_id") or "", name, result=content if isinstance(content, list) else [content]
    )


def _encode_block(b: Block) -> dict | None:
    """One canonical block as an Anthropic request/response content block; None = leave out."""
    kind = b.type
    if kind == "server_tool":
        if b.result is None:
            return {"type": "server_tool_use", "id": b.id, "name": b.name, "input": b.input}
        return {"type": f"{b.name}_tool_result", "tool_use_id": b.id, "content": b.result}
    if kind == "text":
        # Anthropic rejects empty text blocks ("text content blocks must be non-empty");
        # OpenAI clients send content "" next to tool calls.
        return _encode_text(b) if b.text else None
    if kind == "tool_use":
        out = {"type": "tool_use", "id": _safe_id(b.id), "name": b.name, "input": b.input}
        if b.cache_control:
            out["cache_control"] = b.cache_control
        return out
    if kind == "tool_result":
        out = {"type": "tool_result", "tool_use_id": _safe_id(b.tool_use_id)}
        content = b.content
        if len(content) == 1 and content[0].type == "text" and not content[0].cache_control:
            out["content"] = content[0].text  # the common (and most compact) shape
        elif content:
            out["content"] = [
                _encode_text(c) if c.type == "text" else _encode_image(c)
                for c in content
                if c.type in ("text", "image") and (c.type != "text" or c.text)
            ]
        if b.is_error:
            out["is_error"] = True
        if b.cache_control:
            out["cache_control"] = b.cache_control
        return out
    if kind == "thinking":
        # Anthropic verifies the signature of every thinking block it is sent back;
        # a block without one (reasoning text from another provider, or a client
        # that dropped it) would make the whole request fail with a 400. The model
        # does not need earlier turns' thinking, so unsigned blocks are left out.
        # OpenAI reasoning signatures ("<item id>|<encrypted>", see openai_responses)
        # are not Anthropic's either.
        if not b.signature or "|" in b.signature:
            return None
        return {"type": "thinking", "thinking": b.thinking, "signature": b.signature}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": b.data}
    if kind == "image":
        return _encode_image(b)
    return None


def _client_message(kind: str, message: str) -> str:
    # Claude Code (and Goose) start compaction on the phrase Anthropic uses; an
    # OpenAI-worded context error would otherwise surface as a hard failure.
    if kind == "context_length" and "prompt is too long" not in message.lower():
        return "prompt is too long: " + message
    return message


def _message_id(ident: str | None) -> str:
    if ident and ident.startswith("msg_"):
        return ident
    if ident:
        return "msg_" + _ID_BAD_CHARS.sub("_", ident)
    return new_id("msg_")
