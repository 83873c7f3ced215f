"""AWS Bedrock Runtime Converse API: wire constants and helpers shared by the parts of this format."""

from __future__ import annotations

from urllib.parse import quote

import orjson

from ..canonical import (
    Block,
    ImageBlock,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)
from ..errors import GatewayError, UnsupportedFeature
from ..shared import CONTEXT_PHRASES, guess_image_type, mentions_context_overflow, split_data_url


@staticmethod
def _decode_block(item: dict) -> Block | None:
    if not isinstance(item, dict):
        return None
    if "text" in item:
        return TextBlock(str(item["text"]))
    if "toolUse" in item:
        tu = item["toolUse"] or {}
        return ToolUseBlock(
            id=str(tu.get("toolUseId") or ""),
            name=str(tu.get("name") or ""),
            input=tu.get("input") if isinstance(tu.get("input"), dict) else {},
        )
    if "reasoningContent" in item:
        rc = item["reasoningContent"] or {}
        if "redactedContent" in rc:
            return RedactedThinkingBlock(str(rc["redactedContent"]))
        rt = rc.get("reasoningText") or {}
        return ThinkingBlock(str(rt.get("text") or ""), signature=rt.get("signature"))
    if "image" in item:
        return _image_block(item["image"] or {})
    if "toolResult" in item:
        tr = item["toolResult"] or {}
        parts: list[Block] = []
        for c in tr.get("content") or []:
            if "text" in c:
                parts.append(TextBlock(str(c["text"])))
            elif "json" in c:
                parts.append(TextBlock(orjson.dumps(c["json"]).decode()))
            elif "image" in c:
                parts.append(_image_block(c["image"] or {}))
        return ToolResultBlock(
            tool_use_id=str(tr.get("toolUseId") or ""), content=parts, is_error=tr.get("status") == "error"
        )
    if "citationsContent" in item:
        cc = item["citationsContent"] or {}
        text = "".join(str(c.get("text") or "") for c in cc.get("content") or [] if isinstance(c, dict))
        return TextBlock(text) if text else None
    return None


_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}


_STOP_REASONS = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "guardrail_intervened": "refusal",
    "content_filtered": "refusal",
    "model_context_window_exceeded": "max_tokens",
    "malformed_model_output": "error",
    "malformed_tool_use": "error",
}


# Exception frames / error types -> (canonical type, status, retryable)
_EXCEPTIONS = {
    "throttlingexception": ("rate_limit", 429, True),
    "servicequotaexceededexception": ("rate_limit", 429, True),
    "modelnotreadyexception": ("overloaded", 503, True),
    "serviceunavailableexception": ("overloaded", 503, True),
    "validationexception": ("invalid_request", 400, False),
    "modelstreamerrorexception": ("api_error", 500, True),
    "internalserverexception": ("api_error", 500, True),
    "modelerrorexception": ("api_error", 500, True),
    "modeltimeoutexception": ("timeout", 504, True),
    "accessdeniedexception": ("permission", 403, False),
    "resourcenotfoundexception": ("not_found", 404, False),
}


_CONTEXT_PHRASES = CONTEXT_PHRASES + ("too long", "maximum context", "input length")


def converse_path(model_id: str, stream: bool = False) -> str:
    """`/model/{modelId}/converse[-stream]` with the model id percent-encoded
    (`:` in versioned ids, `/` in ARNs), exactly as the request must be signed."""
    return "/model/%s/%s" % (quote(model_id, safe=""), "converse-stream" if stream else "converse")


def runtime_endpoint(region: str) -> str:
    return "https://bedrock-runtime.%s.amazonaws.com" % region


def usage_from_bedrock(usage: dict | None) -> Usage:
    usage = usage if isinstance(usage, dict) else {}
    cache_read = int(usage.get("cacheReadInputTokens") or 0)
    cache_write = int(usage.get("cacheWriteInputTokens") or 0)
    return Usage(
        input_tokens=int(usage.get("inputTokens") or 0) + cache_read + cache_write,
        output_tokens=int(usage.get("outputTokens") or 0),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def _image(block: ImageBlock) -> dict:
    data, media_type = block.data, block.media_type
    if not data and block.url:
        parsed = split_data_url(block.url)
        if parsed is None:
            raise UnsupportedFeature("Bedrock Converse accepts only inline (base64) images, not image URLs.")
        media_type, data = parsed
    if not data:
        raise UnsupportedFeature("Image block without data.")
    media_type = (media_type or guess_image_type(data)).lower()
    fmt = _IMAGE_FORMATS.get(media_type)
    if fmt is None:
        raise UnsupportedFeature(
            "Bedrock Converse supports png, jpeg, gif and webp images, not %s." % media_type
        )
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _image_block(image: dict) -> ImageBlock:
    fmt = str(image.get("format") or "png")
    return ImageBlock(media_type="image/" + fmt, data=str((image.get("source") or {}).get("bytes") or ""))


def _exception_error(name: str, message: str) -> GatewayError:
    type_, status, retryable = _EXCEPTIONS.get((name or "").split(":")[0].lower(), ("api_error", 500, True))
    if type_ == "invalid_request" and mentions_context_overflow(message, _CONTEXT_PHRASES):
        type_ = "context_length"
    return GatewayError(type_, message, status, retryable=retryable)
