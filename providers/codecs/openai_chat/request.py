"""OpenAI Chat Completions: requests: decode_request / encode_request."""

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
from ..errors import InvalidRequest, UnsupportedFeature
from .wire import _arguments_out, _thinking_in, _thinking_out


def decode_request(codec, body: dict, *, require_max_tokens: bool = True) -> Request:
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' must be a non-empty string")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise _bad("'messages' must be a non-empty array")

    # System and developer messages become Request.system, all of them, in order,
    # wherever they appear: aider sends its format rules as a *last* system message.
    # Their position is lost (canonical has one system prompt); the same-format
    # passthrough path forwards the original body and keeps it.
    system: list[TextBlock] = []
    messages: list[Message] = []
    after_tool = False  # consecutive tool messages share one user message
    for i, msg in enumerate(raw_messages):
        if not isinstance(msg, dict):
            raise _bad(f"messages[{i}] must be an object")
        role = msg.get("role")
        if role == "user":
            blocks = _decode_parts(msg.get("content"), i, images=True)
            _message_cache_control(msg, blocks)
            messages.append(Message("user", blocks))
            after_tool = False
        elif role == "assistant":
            messages.append(Message("assistant", _assistant_in(msg, i)))
            after_tool = False
        elif role == "tool":
            call_id = msg.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise _bad(f"messages[{i}].tool_call_id must be a non-empty string")
            result = ToolResultBlock(
                call_id,
                _decode_parts(msg.get("content"), i, images=True),
                cache_control=msg.get("cache_control"),
            )
            # Anthropic (and Bedrock) need all results of one assistant turn in
            # one user message.
            if after_tool:
                messages[-1].content.append(result)
            else:
                messages.append(Message("user", [result]))
            after_tool = True
        elif role == "system" or role == "developer":
            blocks = _decode_parts(msg.get("content"), i, images=False)
            _message_cache_control(msg, blocks)
            system.extend(blocks)  # type: ignore[arg-type]  (text only: images=False)
        elif role == "function":
            raise UnsupportedFeature(
                f"messages[{i}]: legacy 'function' messages are not supported; use tools"
            )
        else:
            raise _bad(
                f"messages[{i}].role must be one of system, developer, user, assistant, tool; got {role!r}"
            )

    tools = None
    raw_tools = body.get("tools")
    if raw_tools is not None:
        if not isinstance(raw_tools, list):
            raise _bad("'tools' must be an array")
        tools = [_tool_in(t, f"tools[{j}]") for j, t in enumerate(raw_tools)]

    max_tokens = _int_field(body, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = _int_field(body, "max_tokens")

    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    elif isinstance(stop, list):
        if not all(isinstance(s, str) for s in stop):
            raise _bad("'stop' must be a string or an array of strings")
        stop = stop or None
    elif stop is not None:
        raise _bad("'stop' must be a string or an array of strings")

    extra = {k: v for k, v in body.items() if k not in _KNOWN_FIELDS}
    stream_options = _dict_field(body, "stream_options") or {}
    if len(stream_options) > (1 if "include_usage" in stream_options else 0):
        # keep e.g. include_obfuscation for a same-format upstream
        extra["stream_options"] = {k: v for k, v in stream_options.items() if k != "include_usage"}

    reasoning = None
    effort = body.get("reasoning_effort")
    if effort is not None:
        if not isinstance(effort, str):
            raise _bad("'reasoning_effort' must be a string")
        reasoning = Reasoning(enabled=effort != "none", effort=effort)

    return Request(
        model=model,
        messages=messages,
        system=system,
        tools=tools,
        tool_choice=_tool_choice_in(body.get("tool_choice"), body.get("parallel_tool_calls")),
        max_tokens=max_tokens,
        temperature=_float_field(body, "temperature"),
        top_p=_float_field(body, "top_p"),
        stop=stop,
        stream=bool(body.get("stream")),
        stream_include_usage=bool(stream_options.get("include_usage")),
        reasoning=reasoning,
        metadata=_dict_field(body, "metadata"),
        response_format=_dict_field(body, "response_format"),
        extra=extra,
        source_format=FORMAT,
    )


def _message_cache_control(msg: dict, blocks: list[Block]) -> None:
    # LiteLLM also accepts cache_control on the message itself (string content).
    if "cache_control" not in msg:
        return
    cc = msg["cache_control"]
    if cc and blocks and getattr(blocks[-1], "cache_control", None) is None:
        blocks[-1].cache_control = cc  # type: ignore[union-attr]


def _assistant_in(msg: dict, i: int) -> list[Block]:
    blocks = _thinking_in(msg)  # thinking first, as Anthropic requires
    content = msg.get("content")
    text = _decode_parts(content, i, images=False)
    if not text and isinstance(msg.get("refusal"), str) and msg["refusal"]:
        text = [TextBlock(msg["refusal"])]
    _message_cache_control(msg, text)
    blocks.extend(text)
    calls = msg.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise _bad(f"messages[{i}].tool_calls must be an array")
        blocks.extend(_tool_use_in(c, i, j) for j, c in enumerate(calls))
    if msg.get("function_call") is not None:
        raise UnsupportedFeature(f"messages[{i}]: legacy 'function_call' is not supported; use tool_calls")
    return blocks


def encode_request(codec, request: Request) -> dict:
    same = request.source_format == FORMAT
    keep_cc = same or codec.send_cache_control
    if not same:
        for key, why in _FOREIGN_EXTRAS_REFUSED.items():
            if request.extra.get(key):
                raise UnsupportedFeature(
                    f"'{key}' cannot be sent to an OpenAI Chat Completions upstream: {why}"
                )

    body: dict = {"model": request.model, "messages": _messages_out(codec, request, keep_cc)}

    # OpenAI rejects `tools: []` ("[] is too short") and tool_choice /
    # parallel_tool_calls without tools; never add tools the client did not send.
    if request.tools:
        body["tools"] = [_tool_out(t, same, keep_cc) for t in request.tools]
        choice = request.tool_choice
        if choice is not None:
            if choice.type == "tool":
                body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
            else:
                body["tool_choice"] = "required" if choice.type == "any" else choice.type
            if choice.disable_parallel_tool_use:
                body["parallel_tool_calls"] = False

    if request.max_tokens is not None:
        key = "max_completion_tokens" if is_reasoning_model(request.model) else "max_tokens"
        body[key] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = request.stop
    if request.stream:
        body["stream"] = True
        options = request.extra.get("stream_options") if same else None
        # The gateway always records usage, whatever the client asked for.
        body["stream_options"] = (
            {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
        )

    effort = _effort_out(request, same)
    if effort:
        body["reasoning_effort"] = effort
    if request.response_format is not None:
        body["response_format"] = request.response_format
    # OpenAI's metadata is store-related and limited to short strings; other
    # formats' metadata (Claude Code's JSON user_id) does not fit: same-format only.
    if same and request.metadata is not None:
        body["metadata"] = request.metadata
    if same:
        for key, value in request.extra.items():
            if key not in body and key != "stream_options":
                body[key] = value
    return body


def _effort_out(request: Request, same: bool) -> str | None:
    r = request.reasoning
    if r is None:
        return None
    if not r.enabled:
        return r.effort if r.effort == "none" else None
    effort = r.effort
    if effort is None and r.budget_tokens is not None:
        effort = _effort_for_budget(r.budget_tokens)
    if effort is None or same:
        return effort
    # Claude Code always asks for thinking; non-reasoning models (gpt-4o, most
    # local models) answer reasoning_effort with a 400, and dropping it there
    # changes nothing the model could have done.
    name = request.model.lower()
    if not (is_reasoning_model(name) or "gpt-oss" in name):
        return None
    return "high" if effort == "max" else effort


def _tool_out(tool: Tool, same: bool, keep_cc: bool) -> dict:
    fn: dict = {"name": tool.name}
    if tool.description is not None:
        fn["description"] = tool.description
    fn["parameters"] = tool.input_schema
    if same and tool.extra:
        fn.update(tool.extra)  # `strict`; other formats' tool extras mean nothing here
    out = {"type": "function", "function": fn}
    if keep_cc and tool.cache_control:
        out["cache_control"] = tool.cache_control
    return out


def _messages_out(codec, request: Request, keep_cc: bool) -> list[dict]:
    out: list[dict] = []
    if request.system:
        # One leading system message; several system blocks are joined with a
        # blank line (a mid-conversation system message cannot be expressed in
        # canonical anyway). With cache markers, text parts keep them apart.
        if keep_cc and any(b.cache_control for b in request.system):
            out.append({"role": "system", "content": [_part_out(b, True) for b in request.system]})
        else:
            out.append({"role": "system", "content": "\n\n".join(b.text for b in request.system)})
    for msg in request.messages:
        if msg.role == "assistant":
            out.append(_assistant_out(codec, msg, keep_cc))
        else:
            _user_out(codec, msg, out, keep_cc)
    return out


def _part_out(block: Block, keep_cc: bool) -> dict:
    if isinstance(block, TextBlock):
        part: dict = {"type": "text", "text": block.text}
    else:  # ImageBlock
        url = block.url if block.url else f"data:{block.media_type or 'image/png'};base64,{block.data or ''}"
        image = {"url": url}
        if block.detail:
            image["detail"] = block.detail
        part = {"type": "image_url", "image_url": image}
    if keep_cc and block.cache_control:
        part["cache_control"] = block.cache_control
    return part


def _content_out(codec, blocks: list[Block], keep_cc: bool):
    """A lone text block becomes a plain string (what every server accepts);
    several blocks or images become an array of parts."""
    if len(blocks) == 1:
        b = blocks[0]
        if isinstance(b, TextBlock) and not (keep_cc and b.cache_control):
            return b.text
    return [_part_out(b, keep_cc) for b in blocks]


def _user_out(codec, msg: Message, out: list[dict], keep_cc: bool) -> None:
    # Tool results become `tool` messages, and they come first: OpenAI wants them
    # right after the assistant's tool_calls, before any new user text.
    tool_msgs: list[dict] = []
    parts: list[Block] = []
    moved: list[Block] = []
    for b in msg.content:
        if isinstance(b, ToolResultBlock):
            texts: list[Block] = []
            images: list[Block] = []
            for c in b.content:
                if isinstance(c, TextBlock):
                    texts.append(c)
                elif isinstance(c, ImageBlock):
                    images.append(c)
            if keep_cc and b.cache_control and texts and not texts[-1].cache_control:
                texts[-1] = TextBlock(texts[-1].text, b.cache_control)
            # OpenAI has no error flag on tool results: the text goes as it is
            # (error results normally say so themselves); nothing is invented.
            tool_msgs.append(
                {
                    "role": "tool",
                    "tool_call_id": b.tool_use_id,
                    "content": _content_out(codec, texts, keep_cc) if texts else "",
                }
            )
            if images:
                # Tool messages cannot carry images (Claude Code's Read tool returns
                # screenshots): they follow in a user message, labelled.
                moved.append(TextBlock(f"Image output of tool call {b.tool_use_id}:"))
                moved.extend(images)
        elif isinstance(b, (TextBlock, ImageBlock)):
            parts.append(b)
        else:
            raise UnsupportedFeature(f"a {b.type} block cannot appear in a user message for Chat Completions")
    out.extend(tool_msgs)
    parts = moved + parts
    if parts:
        out.append({"role": "user", "content": _content_out(codec, parts, keep_cc)})
    elif not tool_msgs:
        out.append({"role": "user", "content": ""})


def _assistant_out(codec, msg: Message, keep_cc: bool) -> dict:
    texts: list[Block] = []
    calls: list[dict] = []
    thinking: list[Block] = []
    for b in msg.content:
        if isinstance(b, TextBlock):
            texts.append(b)
        elif isinstance(b, ToolUseBlock):
            calls.append(
                {"id": b.id, "type": "function", "function": {"name": b.name, "arguments": _arguments_out(b)}}
            )
        elif isinstance(b, (ThinkingBlock, RedactedThinkingBlock)):
            thinking.append(b)
        else:
            raise UnsupportedFeature(
                f"a {b.type} block cannot appear in an assistant message for Chat Completions"
            )
    out: dict = {
        "role": "assistant",
        "content": _content_out(codec, texts, keep_cc) if texts else (None if calls else ""),
    }
    if thinking and codec.send_thinking:
        _thinking_out(thinking, out)
    if calls:
        out["tool_calls"] = calls
    return out


FORMAT = "openai_chat"


# Top-level request fields this codec maps onto the canonical Request; everything
# else goes to Request.extra untouched.
_KNOWN_FIELDS = frozenset(
    (
        "model",
        "messages",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "stream_options",
        "reasoning_effort",
        "response_format",
        "metadata",
    )
)


# Extras of *other* formats that change what the model sees or does and have no
# Chat Completions equivalent: dropping them silently would answer a different
# question, so they are refused. Other foreign extras (top_k, store, keep_alive,
# context_management, ...) are tuning hints and are dropped.
_FOREIGN_EXTRAS_REFUSED = {
    "previous_response_id": (
        "server-side conversation state (Responses API) cannot be replayed to Chat Completions"
    ),
    "conversation": "server-side conversation state (Responses API) cannot be replayed to Chat Completions",
    "prompt": "stored prompt templates (Responses API) are not available in Chat Completions",
    "background": "background mode (Responses API) is not available in Chat Completions",
    "mcp_servers": "Anthropic's MCP connector has no Chat Completions equivalent",
    "container": "Anthropic code-execution containers have no Chat Completions equivalent",
    "guardrailConfig": "Bedrock guardrails cannot be enforced by a Chat Completions upstream",
    "promptVariables": "Bedrock prompt management variables have no Chat Completions equivalent",
}


def is_reasoning_model(model: str) -> bool:
    """OpenAI reasoning models take `max_completion_tokens` and `reasoning_effort`;
    most other OpenAI-compatible servers only understand `max_tokens`."""
    name = model.rsplit("/", 1)[-1].lower()
    return name.startswith(("o1", "o3", "o4", "gpt-5"))


def _effort_for_budget(budget: int) -> str:
    if budget < 4096:
        return "low"
    if budget < 16384:
        return "medium"
    return "high"


def _bad(message: str) -> InvalidRequest:
    return InvalidRequest(message)


def _image_from_part(part: dict, where: str) -> ImageBlock:
    spec = part.get("image_url")
    detail = None
    if isinstance(spec, dict):
        url = spec.get("url")
        detail = spec.get("detail")
    else:
        url = spec
    if not isinstance(url, str) or not url:
        raise _bad(f"{where}.image_url.url must be a non-empty string")
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        if sep and header.endswith(";base64"):
            return ImageBlock(
                media_type=header[:-7] or None,
                data=data,
                detail=detail,
                cache_control=part.get("cache_control"),
            )
    return ImageBlock(url=url, detail=detail, cache_control=part.get("cache_control"))


def _decode_parts(content, i: int, images: bool) -> list[Block]:
    """Content of messages[i]: a string or an array of content parts."""
    if type(content) is str:
        return [TextBlock(content)] if content else []
    if content is None:
        return []
    where = f"messages[{i}].content"
    if not isinstance(content, list):
        raise _bad(f"{where} must be a string or an array of content parts")
    blocks: list[Block] = []
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            raise _bad(f"{where}[{j}] must be an object")
        kind = part.get("type")
        if kind == "text" or kind == "input_text" or kind == "refusal":
            text = part.get("refusal" if kind == "refusal" else "text")
            if not isinstance(text, str):
                raise _bad(f"{where}[{j}].text must be a string")
            blocks.append(TextBlock(text, part.get("cache_control")))
        elif kind == "image_url" and images:
            blocks.append(_image_from_part(part, f"{where}[{j}]"))
        else:
            raise UnsupportedFeature(f"{where}[{j}]: content part type {kind!r} is not supported here")
    return blocks


def _tool_use_in(call, i: int, j: int) -> ToolUseBlock:
    # The field path for error messages is only formatted when there is an error:
    # this runs for every tool call of every replayed turn.
    if not isinstance(call, dict):
        raise _bad(f"messages[{i}].tool_calls[{j}] must be an object")
    kind = call.get("type", "function")
    if kind != "function":
        raise UnsupportedFeature(f"messages[{i}].tool_calls[{j}]: tool call type {kind!r} is not supported")
    fn = call.get("function")
    call_id = call.get("id")
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise _bad(f"messages[{i}].tool_calls[{j}].function.name must be a non-empty string")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"messages[{i}].tool_calls[{j}].id must be a non-empty string")
    raw = fn.get("arguments")
    if isinstance(raw, str) and raw:
        try:
            args = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if raw.strip():
                raise _bad(
                    f"messages[{i}].tool_calls[{j}].function.arguments is not valid JSON ({exc}): "
                    f"{raw[:100]!r}"
                ) from None
            args = {}
        if not isinstance(args, dict):
            raise _bad(
                f"messages[{i}].tool_calls[{j}].function.arguments must encode a JSON object, "
                f"got {raw[:100]!r}"
            )
    elif isinstance(raw, dict):
        args = raw
    elif raw is None or raw == "":
        args = {}
    else:
        raise _bad(f"messages[{i}].tool_calls[{j}].function.arguments must be a JSON string")
    return ToolUseBlock(id=call_id, name=fn["name"], input=args)


def _tool_in(tool, where: str) -> Tool:
    if not isinstance(tool, dict):
        raise _bad(f"{where} must be an object")
    kind = tool.get("type", "function")
    if kind != "function":
        raise UnsupportedFeature(f"{where}: tool type {kind!r} is not supported, only function tools")
    fn = tool.get("function")
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise _bad(f"{where}.function.name must be a non-empty string")
    params = fn.get("parameters")
    if params is None:
        params = {"type": "object", "properties": {}}
    elif not isinstance(params, dict):
        raise _bad(f"{where}.function.parameters must be an object")
    description = fn.get("description")
    extra = {"strict": fn["strict"]} if fn.get("strict") is not None else {}
    return Tool(
        name=fn["name"],
        description=description if isinstance(description, str) else None,
        input_schema=params,
        cache_control=tool.get("cache_control") or fn.get("cache_control"),
        extra=extra,
    )


def _tool_choice_in(value, parallel) -> ToolChoice | None:
    choice = None
    if value is not None:
        if value == "auto" or value == "none":
            choice = ToolChoice(value)
        elif value == "required":
            choice = ToolChoice("any")
        elif isinstance(value, dict) and value.get("type") == "function":
            fn = value.get("function")
            name = fn.get("name") if isinstance(fn, dict) else None
            if not isinstance(name, str) or not name:
                raise _bad("tool_choice.function.name must be a non-empty string")
            choice = ToolChoice("tool", name)
        elif isinstance(value, dict):
            raise UnsupportedFeature(f"tool_choice type {value.get('type')!r} is not supported")
        else:
            raise _bad(
                "tool_choice must be 'auto', 'none', 'required' or {type: 'function', function: {name}}"
            )
    if parallel is False:
        choice = choice or ToolChoice("auto")
        choice.disable_parallel_tool_use = True
    return choice


def _int_field(body: dict, key: str) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(f"'{key}' must be an integer")
    return v


def _float_field(body: dict, key: str) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _bad(f"'{key}' must be a number")
    return v


def _dict_field(body: dict, key: str) -> dict | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise _bad(f"'{key}' must be an object")
    return v
