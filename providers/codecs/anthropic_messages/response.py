"""Anthropic Messages API: responses: decode_response / encode_response."""

from __future__ import annotations

from ..canonical import (
    Block,
    RedactedThinkingBlock,
    Request,
    Response,
    ServerToolBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
)
from ..errors import GatewayError
from .wire import (
    _STOP_IN,
    _STOP_OUT,
    _encode_block,
    _message_id,
    _server_result,
    _usage_in,
    _usage_out,
)


def decode_response(codec, body: dict, *, model: str = "") -> Response:
    if not isinstance(body, dict):
        raise GatewayError(
            "bad_gateway", "upstream returned a non-object Anthropic response", 502, retryable=True
        )
    content: list[Block] = []
    for raw in body.get("content") or ():
        if not isinstance(raw, dict):
            continue
        kind = raw.get("type")
        if kind == "text":
            content.append(TextBlock(raw.get("text") or ""))
        elif kind == "tool_use":
            content.append(ToolUseBlock(raw.get("id") or "", raw.get("name") or "", raw.get("input") or {}))
        elif kind == "thinking":
            content.append(ThinkingBlock(raw.get("thinking") or "", raw.get("signature")))
        elif kind == "redacted_thinking":
            content.append(RedactedThinkingBlock(raw.get("data") or ""))
        elif kind == "server_tool_use":  # a tool Anthropic ran (web_search a route mapped)
            content.append(
                ServerToolBlock(
                    raw.get("id") or "",
                    raw.get("name") or "",
                    raw.get("input") if isinstance(raw.get("input"), dict) else {},
                )
            )
        elif isinstance(kind, str) and kind.endswith("_tool_result") and kind != "tool_result":
            content.append(_server_result(raw))
    stop = body.get("stop_reason")
    return Response(
        id=body.get("id") or "",
        model=body.get("model") or "",
        content=content,
        stop_reason=_STOP_IN.get(stop, "end_turn") if stop is not None else None,
        stop_sequence=body.get("stop_sequence"),
        usage=_usage_in(body.get("usage")),
    )


def encode_response(codec, response: Response, request: Request) -> dict:
    content = []
    for b in response.content:
        if b.type == "thinking":
            # keep reasoning visible even without a signature (other providers)
            content.append({"type": "thinking", "thinking": b.thinking, "signature": b.signature or ""})
            continue
        enc = _encode_block(b)
        if enc is not None:
            content.append(enc)
    stop = response.stop_reason
    return {
        "id": _message_id(response.id),
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": content,
        "stop_reason": _STOP_OUT.get(stop, stop) if stop is not None else None,
        "stop_sequence": response.stop_sequence,
        "usage": _usage_out(response.usage),
    }
