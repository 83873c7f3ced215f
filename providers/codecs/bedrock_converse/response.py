"""AWS Bedrock Runtime Converse API: responses: decode_response / encode_response."""

from __future__ import annotations

from ..canonical import (
    ImageBlock,
    RedactedThinkingBlock,
    Request,
    Response,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from ..errors import GatewayError
from ..shared import new_id
from .wire import _STOP_REASONS, _image, usage_from_bedrock


def decode_response(codec, body: dict, *, model: str = "") -> Response:
    """`model` is optional: Converse responses do not name the model (it was in the URL)."""
    if not isinstance(body, dict) or not isinstance(body.get("output"), dict):
        raise GatewayError("bad_gateway", "Upstream Bedrock response has no output.", 502, retryable=True)
    message = body["output"].get("message") or {}
    content = [b for b in (codec._decode_block(i) for i in message.get("content") or []) if b is not None]
    stop_reason = _STOP_REASONS.get(str(body.get("stopReason") or ""), "end_turn")
    amrf = body.get("additionalModelResponseFields") or {}
    stop_sequence = amrf.get("stop_sequence") if isinstance(amrf, dict) else None
    return Response(
        id=new_id("msg_bdrk_"),
        model=model,
        content=content,
        stop_reason=stop_reason,
        stop_sequence=stop_sequence if isinstance(stop_sequence, str) else None,
        usage=usage_from_bedrock(body.get("usage")),
    )


def encode_response(codec, response: Response, request: Request) -> dict:
    content: list[dict] = []
    for block in response.content:
        if isinstance(block, TextBlock):
            content.append({"text": block.text})
        elif isinstance(block, ToolUseBlock):
            content.append({"toolUse": {"toolUseId": block.id, "name": block.name, "input": block.input}})
        elif isinstance(block, ThinkingBlock):
            rt = {"text": block.thinking}
            if block.signature:
                rt["signature"] = block.signature
            content.append({"reasoningContent": {"reasoningText": rt}})
        elif isinstance(block, RedactedThinkingBlock):
            content.append({"reasoningContent": {"redactedContent": block.data}})
        elif isinstance(block, ImageBlock):
            content.append(_image(block))
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": _STOP_REASONS_OUT.get(response.stop_reason or "end_turn", "end_turn"),
        "usage": usage_to_bedrock(response.usage),
        "metrics": {"latencyMs": 0},
    }


_STOP_REASONS_OUT = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "refusal": "content_filtered",
}


def usage_to_bedrock(usage: Usage) -> dict:
    uncached = max(0, usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens)
    out = {
        "inputTokens": uncached,
        "outputTokens": usage.output_tokens,
        "totalTokens": usage.input_tokens + usage.output_tokens,
    }
    if usage.cache_read_tokens:
        out["cacheReadInputTokens"] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        out["cacheWriteInputTokens"] = usage.cache_write_tokens
    return out
