"""AWS Bedrock Runtime Converse API: requests: decode_request / encode_request."""

from __future__ import annotations

import orjson

from ..canonical import (
    Block,
    ImageBlock,
    Message,
    Reasoning,
    RedactedThinkingBlock,
    Request,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)
from ..errors import GatewayError
from .wire import _image


def encode_request(codec, request: Request) -> dict:
    anthropic = is_anthropic_model(request.model)
    body: dict = {}
    if request.source_format == codec.name:
        body.update(request.extra)  # guardrailConfig, performanceConfig, requestMetadata...

    messages: list[dict] = []
    has_tool_blocks = False
    history_tools: dict[str, None] = {}
    for message in request.messages:
        content: list[dict] = []
        for block in message.content:
            before = len(content)
            if isinstance(block, TextBlock):
                if block.text.strip():
                    content.append({"text": block.text})
            elif isinstance(block, ImageBlock):
                content.append(_image(block))
            elif isinstance(block, ToolUseBlock):
                has_tool_blocks = True
                history_tools[block.name] = None
                content.append(
                    {
                        "toolUse": {
                            "toolUseId": block.id,
                            "name": block.name,
                            "input": block.input if isinstance(block.input, dict) else {},
                        }
                    }
                )
            elif isinstance(block, ToolResultBlock):
                has_tool_blocks = True
                content.append({"toolResult": codec._tool_result(block, anthropic)})
            elif isinstance(block, ThinkingBlock):
                # Unsigned thinking cannot be replayed (Anthropic rejects it); drop it.
                if block.signature:
                    content.append(
                        {
                            "reasoningContent": {
                                "reasoningText": {"text": block.thinking, "signature": block.signature}
                            }
                        }
                    )
            elif isinstance(block, RedactedThinkingBlock):
                content.append({"reasoningContent": {"redactedContent": block.data}})
            cache_control = getattr(block, "cache_control", None)
            if cache_control and len(content) > before:
                content.append(_cache_point(cache_control))
        if not content:
            continue
        if messages and messages[-1]["role"] == message.role:
            # Converse wants alternating roles: merge consecutive same-role turns.
            messages[-1]["content"].extend(content)
        else:
            messages.append({"role": message.role, "content": content})
    body["messages"] = messages

    if request.system:
        system: list[dict] = []
        for block in request.system:
            if block.text.strip():
                system.append({"text": block.text})
                if block.cache_control:
                    system.append(_cache_point(block.cache_control))
        if system:
            body["system"] = system

    inference: dict = {}
    thinking = codec._thinking(request) if anthropic else None
    if request.max_tokens is not None:
        inference["maxTokens"] = request.max_tokens
    if thinking is not None:
        if request.max_tokens is None:
            inference["maxTokens"] = thinking["budget_tokens"] + 4096
        elif thinking["budget_tokens"] >= request.max_tokens:
            thinking["budget_tokens"] = request.max_tokens - 1
            if thinking["budget_tokens"] < 1024:
                thinking = None  # Anthropic's minimum budget does not fit under max_tokens
    if request.temperature is not None and thinking is None:
        inference["temperature"] = request.temperature
    if request.top_p is not None and thinking is None:
        # Anthropic rejects temperature/top_p changes while extended thinking is on.
        inference["topP"] = request.top_p
    if request.stop:
        inference["stopSequences"] = list(request.stop)
    if inference:
        body["inferenceConfig"] = inference

    tool_config = codec._tool_config(request, has_tool_blocks, list(history_tools))
    if tool_config:
        body["toolConfig"] = tool_config

    if thinking is not None:
        extra_fields = dict(body.get("additionalModelRequestFields") or {})
        extra_fields["thinking"] = thinking
        body["additionalModelRequestFields"] = extra_fields

    rf = request.response_format or {}
    if rf.get("type") == "json_schema":
        spec = rf.get("json_schema") or {}
        schema = spec.get("schema")
        if isinstance(schema, dict):
            json_schema = {"schema": orjson.dumps(schema).decode(), "name": spec.get("name") or "response"}
            if spec.get("description"):
                json_schema["description"] = spec["description"]
            body["outputConfig"] = {
                "textFormat": {"type": "json_schema", "structure": {"jsonSchema": json_schema}}
            }
    # response_format json_object has no Converse equivalent: left to the prompt.
    return body


@staticmethod
def _tool_result(block: ToolResultBlock, anthropic: bool) -> dict:
    content: list[dict] = []
    for part in block.content:
        if isinstance(part, TextBlock):
            if part.text.strip():
                content.append({"text": part.text})
        elif isinstance(part, ImageBlock):
            content.append(_image(part))
    result: dict = {"toolUseId": block.tool_use_id}
    if block.is_error:
        if anthropic:
            result["status"] = "error"
        else:
            # `status` is only accepted for Anthropic models; say it in the text instead.
            content.insert(0, {"text": "Error:"})
    result["content"] = content or [{"text": _EMPTY_TOOL_RESULT}]
    return result


@staticmethod
def _thinking(request: Request) -> dict | None:
    r = request.reasoning
    if r is None or not r.enabled:
        return None
    budget = r.budget_tokens or _EFFORT_BUDGET.get((r.effort or "").lower()) or _DEFAULT_BUDGET
    return {"type": "enabled", "budget_tokens": max(1024, int(budget))}


@staticmethod
def _tool_config(request: Request, has_tool_blocks: bool, history_names: list[str]) -> dict | None:
    choice = request.tool_choice
    tools: list[dict] = []
    for t in request.tools or []:
        spec: dict = {
            "name": t.name,
            "inputSchema": {"json": t.input_schema or {"type": "object", "properties": {}}},
        }
        if t.description:
            spec["description"] = t.description
        tools.append({"toolSpec": spec})
        if t.cache_control:
            tools.append(_cache_point(t.cache_control))
    if choice is not None and choice.type == "none" and not has_tool_blocks:
        # Converse has no toolChoice "none": not offering the tools is the faithful form.
        return None
    if not tools:
        if not has_tool_blocks:
            return None
        # Converse rejects toolUse/toolResult history without a toolConfig: declare the tools
        # the history references, with an open schema (the request offered none).
        tools = [
            {
                "toolSpec": {
                    "name": name,
                    "description": "Tool used earlier in this conversation.",
                    "inputSchema": {"json": {"type": "object", "properties": {}}},
                }
            }
            for name in history_names
        ] or [
            {
                "toolSpec": {
                    "name": "unavailable_tool",
                    "description": "Placeholder; do not call.",
                    "inputSchema": {"json": {"type": "object", "properties": {}}},
                }
            }
        ]
    config: dict = {"tools": tools}
    # tool_choice "none" with tool history: tools must stay declared and Converse cannot
    # forbid calls, so toolChoice is simply omitted (the model may still call a tool).
    if choice is not None and choice.type != "none" and request.tools:
        if choice.type == "any":
            config["toolChoice"] = {"any": {}}
        elif choice.type == "tool" and choice.name:
            config["toolChoice"] = {"tool": {"name": choice.name}}
        else:
            config["toolChoice"] = {"auto": {}}
    return config


def decode_request(codec, body: dict, *, require_max_tokens: bool = True) -> Request:
    """Converse body -> canonical (the model id lives in the URL: pass it as body["modelId"])."""
    if not isinstance(body, dict):
        raise GatewayError("invalid_request", "Request body must be a JSON object.", 400)
    messages: list[Message] = []
    for raw in body.get("messages") or []:
        role = raw.get("role")
        if role not in ("user", "assistant"):
            raise GatewayError("invalid_request", "message role must be user or assistant", 400)
        blocks: list[Block] = []
        for item in raw.get("content") or []:
            block = codec._decode_block(item)
            if block is not None:
                blocks.append(block)
            elif "cachePoint" in item and blocks and hasattr(blocks[-1], "cache_control"):
                blocks[-1].cache_control = _cache_control(item["cachePoint"])
        messages.append(Message(role, blocks))
    system: list[TextBlock] = []
    for item in body.get("system") or []:
        if "text" in item:
            system.append(TextBlock(item["text"]))
        elif "cachePoint" in item and system:
            system[-1].cache_control = _cache_control(item["cachePoint"])
    tools = None
    tool_choice = None
    tc = body.get("toolConfig")
    if isinstance(tc, dict):
        tools = []
        for item in tc.get("tools") or []:
            spec = item.get("toolSpec")
            if spec:
                tools.append(
                    Tool(
                        name=spec["name"],
                        description=spec.get("description"),
                        input_schema=(spec.get("inputSchema") or {}).get("json")
                        or {"type": "object", "properties": {}},
                    )
                )
            elif "cachePoint" in item and tools:
                tools[-1].cache_control = _cache_control(item["cachePoint"])
        choice = tc.get("toolChoice") or {}
        if "any" in choice:
            tool_choice = ToolChoice("any")
        elif "tool" in choice:
            tool_choice = ToolChoice("tool", name=(choice["tool"] or {}).get("name"))
        elif "auto" in choice:
            tool_choice = ToolChoice("auto")
    inference = body.get("inferenceConfig") or {}
    reasoning = None
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        reasoning = Reasoning(enabled=True, budget_tokens=thinking.get("budget_tokens"))
    known = {"modelId", "messages", "system", "toolConfig", "inferenceConfig"}
    return Request(
        model=str(body.get("modelId") or ""),
        messages=messages,
        system=system,
        tools=tools,
        tool_choice=tool_choice,
        max_tokens=inference.get("maxTokens"),
        temperature=inference.get("temperature"),
        top_p=inference.get("topP"),
        stop=inference.get("stopSequences"),
        reasoning=reasoning,
        extra={k: v for k, v in body.items() if k not in known},
        source_format=codec.name,
    )


# Reasoning effort -> Anthropic thinking budget when only an effort is known.
_EFFORT_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768, "max": 32768}


_DEFAULT_BUDGET = 4096


_EMPTY_TOOL_RESULT = "(no output)"  # Bedrock rejects empty text blocks


def is_anthropic_model(model_id: str) -> bool:
    m = (model_id or "").lower()
    return "anthropic" in m or "claude" in m


def _cache_point(cache_control) -> dict:
    point = {"type": "default"}
    ttl = cache_control.get("ttl") if isinstance(cache_control, dict) else None
    if ttl in ("5m", "1h"):
        point["ttl"] = ttl
    return {"cachePoint": point}


def _cache_control(point) -> dict:
    ttl = point.get("ttl") if isinstance(point, dict) else None
    return {"type": "ephemeral", "ttl": ttl} if ttl else {"type": "ephemeral"}
