"""OpenAI Responses API: responses: decode_response / encode_response."""

from __future__ import annotations

import time

import orjson

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
from ..shared import arguments_object
from .wire import (
    REDACTED,
    _call_item,
    _message_item,
    _namespace_map,
    _new_id,
    _reasoning_item,
    _status_for,
    _stop_reason,
    _summary_text,
    client_response_id,
    join_namespace,
    reasoning_block,
    response_object,
    split_signature,
    stream_error_from,
    usage_from,
    usage_to,
    web_search_item,
)


# ------------------------------------------------------------------ responses
def decode_response(codec, body: dict, *, model: str = "") -> Response:
    if not isinstance(body, dict) or not isinstance(body.get("output"), list):
        raise GatewayError(
            "bad_gateway", "upstream returned a malformed Responses API body", 502, retryable=True
        )
    status = body.get("status")
    if status == "failed":
        err = stream_error_from(body.get("error"), "upstream response failed")
        raise GatewayError(
            err.type, err.message, err.status, retryable=err.type not in ("context_length", "invalid_request")
        )
    content: list[Block] = []
    has_calls = refused = False
    for item in body["output"]:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "output_text":
                    content.append(TextBlock(part.get("text") or ""))
                elif part.get("type") == "refusal":
                    refused = True
                    content.append(TextBlock(part.get("refusal") or ""))
        elif kind == "function_call":
            has_calls = True
            name = item.get("name") or ""
            if item.get("namespace"):
                name = join_namespace(item["namespace"], name)
            content.append(
                ToolUseBlock(
                    id=item.get("call_id") or item.get("id") or _new_id("call_"),
                    name=name,
                    input=_lenient_arguments(item.get("arguments")),
                )
            )
        elif kind == "reasoning":
            content.append(
                reasoning_block(item.get("id"), item.get("encrypted_content"), _summary_text(item))
            )
    return Response(
        id=body.get("id") or _new_id("resp_"),
        model=body.get("model") or "",
        content=content,
        stop_reason=_stop_reason(status, body.get("incomplete_details"), has_calls, refused),
        usage=usage_from(body.get("usage")),
    )


def encode_response(codec, response: Response, request: Request) -> dict:
    ns_map = _namespace_map(request.tools)
    output: list[dict] = []
    for b in response.content:
        if isinstance(b, TextBlock):
            output.append(_message_item(_new_id("msg_"), b.text, "completed"))
        elif isinstance(b, ToolUseBlock):
            output.append(
                _call_item(_new_id("fc_"), b.id, b.name, orjson.dumps(b.input).decode(), "completed", ns_map)
            )
        elif isinstance(b, ThinkingBlock):
            item_id, enc = split_signature(b.signature)
            output.append(_reasoning_item(item_id or _new_id("rs_"), b.thinking, enc))
        elif isinstance(b, RedactedThinkingBlock):
            output.append(_reasoning_item(_new_id("rs_"), "", REDACTED + b.data))
        elif isinstance(b, ServerToolBlock) and b.result is None and b.name == "web_search":
            output.append(web_search_item(b))
        # a server tool's result has no Responses item: the model's text carries it
    status, incomplete = _status_for(response.stop_reason)
    return response_object(
        request,
        client_response_id(response.id),
        int(time.time()),
        status,
        output,
        usage_to(response.usage),
        incomplete,
    )


def _lenient_arguments(args) -> dict:
    return arguments_object(args) or {}
