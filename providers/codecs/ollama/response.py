"""Ollama native API: responses: decode_response / encode_response."""

from __future__ import annotations

import orjson

from ..canonical import (
    Block,
    Request,
    Response,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from ..errors import GatewayError
from ..shared import new_id
from .wire import (
    _content_text,
    _done_reason,
    _now_rfc3339,
    _parse_arguments,
    _stop_from_done_reason,
)


def decode_response(codec, body: dict, *, model: str = "") -> Response:
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        if isinstance(body, dict) and body.get("error"):
            raise codec.decode_error(500, orjson.dumps(body))
        raise GatewayError("bad_gateway", "Upstream Ollama response has no message.", 502, retryable=True)
    msg = body["message"]
    content: list[Block] = []
    if msg.get("thinking"):
        content.append(ThinkingBlock(str(msg["thinking"])))
    text = _content_text(msg.get("content"))
    if text:
        content.append(TextBlock(text))
    prefix = new_id("call_", 12) + "_"
    calls = msg.get("tool_calls") or []
    for i, call in enumerate(calls):
        fn = (call or {}).get("function") or {}
        content.append(
            ToolUseBlock(
                id=str(call.get("id") or prefix + str(i)),
                name=fn.get("name") or "",
                input=_parse_arguments(fn.get("arguments")),
            )
        )
    return Response(
        id=new_id("msg_"),
        model=str(body.get("model") or ""),
        content=content,
        stop_reason=_stop_from_done_reason(body.get("done_reason"), bool(calls)),
        usage=Usage(
            input_tokens=int(body.get("prompt_eval_count") or 0),
            output_tokens=int(body.get("eval_count") or 0),
        ),
    )


def encode_response(codec, response: Response, request: Request) -> dict:
    text, thinking, calls = [], [], []
    for block in response.content:
        if isinstance(block, TextBlock):
            text.append(block.text)
        elif isinstance(block, ThinkingBlock):
            thinking.append(block.thinking)
        elif isinstance(block, ToolUseBlock):
            calls.append({"function": {"name": block.name, "arguments": block.input or {}}})
    message: dict = {"role": "assistant", "content": "".join(text)}
    if thinking:
        message["thinking"] = "".join(thinking)
    if calls:
        message["tool_calls"] = calls
    return {
        "model": request.model,
        "created_at": _now_rfc3339(),
        "message": message,
        "done": True,
        "done_reason": _done_reason(response.stop_reason),
        "total_duration": 0,
        "load_duration": 0,
        "prompt_eval_count": response.usage.input_tokens,
        "prompt_eval_duration": 0,
        "eval_count": response.usage.output_tokens,
        "eval_duration": 0,
    }
