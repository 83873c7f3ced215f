"""OpenAI Chat Completions: responses: decode_response / encode_response."""

from __future__ import annotations

import time

from ..canonical import (
    Block,
    RedactedThinkingBlock,
    Request,
    Response,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from ..errors import ERROR_TYPES, GatewayError
from ..shared import arguments_object
from .wire import (
    _RAW_ARGS,
    _arguments_out,
    _classify,
    _encode_usage,
    _error_fields,
    _finish_reason,
    _new_id,
    _stop_reason,
    _thinking_in,
    _thinking_out,
    decode_usage,
)


def decode_response(codec, body: dict, *, model: str = "") -> Response:
    if not isinstance(body, dict):
        raise GatewayError("bad_gateway", "upstream response is not a JSON object", 502, retryable=True)
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        if body.get("error") is not None:
            message, wire_type, code, status = _error_fields(body)
            message = message or "upstream error"
            kind = _classify(status, message, code, wire_type)
            raise GatewayError(
                kind,
                "upstream error: " + message,
                status or ERROR_TYPES.get(kind, 502),
                retryable=kind in ("rate_limit", "api_error", "bad_gateway", "overloaded", "timeout"),
                code=code if isinstance(code, str) else None,
            )
        raise GatewayError("bad_gateway", "upstream response has no choices", 502, retryable=True)
    choice = choices[0]
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}

    blocks = _thinking_in(message)
    content = message.get("content")
    if isinstance(content, str):
        if content:
            blocks.append(TextBlock(content))
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                blocks.append(TextBlock(part["text"]))
    refusal = message.get("refusal")
    refused = isinstance(refusal, str) and bool(refusal) and not content
    if refused:
        blocks.append(TextBlock(refusal))
    has_tools = False
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            if not isinstance(call, dict):
                continue
            fn = call.get("function")
            fn = fn if isinstance(fn, dict) else {}
            call_id = call.get("id")
            blocks.append(
                ToolUseBlock(
                    id=call_id if isinstance(call_id, str) and call_id else _new_id("call_"),
                    name=fn.get("name") if isinstance(fn.get("name"), str) else "",
                    input=_arguments_in_lenient(fn.get("arguments")),
                )
            )
            has_tools = True
    stop = _stop_reason(choice.get("finish_reason"), has_tools)
    if refused and stop == "end_turn":
        stop = "refusal"
    rid = body.get("id")
    model = body.get("model")
    return Response(
        id=rid if isinstance(rid, str) and rid else _new_id("chatcmpl-"),
        model=model if isinstance(model, str) else "",
        content=blocks,
        stop_reason=stop,
        usage=decode_usage(body.get("usage")) or Usage(),
    )


def usage_from_response(codec, body: dict) -> Usage:
    return (decode_usage(body.get("usage")) if isinstance(body, dict) else None) or Usage()


def encode_response(codec, response: Response, request: Request) -> dict:
    texts: list[str] = []
    thinking: list[Block] = []
    calls: list[dict] = []
    for b in response.content:
        if isinstance(b, TextBlock):
            texts.append(b.text)
        elif isinstance(b, ToolUseBlock):
            calls.append(
                {"id": b.id, "type": "function", "function": {"name": b.name, "arguments": _arguments_out(b)}}
            )
        elif isinstance(b, (ThinkingBlock, RedactedThinkingBlock)):
            thinking.append(b)
    # Text blocks are concatenated as they are, as a stream's content deltas
    # would be (Anthropic splits cited text into adjacent blocks).
    message: dict = {"role": "assistant", "content": "".join(texts) if texts else None, "refusal": None}
    if thinking:
        _thinking_out(thinking, message)
    if calls:
        message["tool_calls"] = calls
    rid = response.id or _new_id("")
    return {
        "id": rid if rid.startswith("chatcmpl-") else "chatcmpl-" + rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish_reason(response.stop_reason, bool(calls)),
            }
        ],
        "usage": _encode_usage(response.usage),
    }


def _arguments_in_lenient(raw) -> dict:
    """Upstream tool-call arguments. A model can emit broken JSON; the response must
    still reach the client, so unparseable text is kept verbatim under
    `_raw_arguments` (re-encoded to OpenAI as the same string) and the client's tool
    validation tells the model what went wrong."""
    value = arguments_object(raw)
    if value is None:
        return {_RAW_ARGS: raw} if isinstance(raw, str) else {}
    return value
