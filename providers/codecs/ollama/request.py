"""Ollama native API: requests: decode_request / encode_request."""

from __future__ import annotations

from ..canonical import (
    Block,
    ImageBlock,
    Message,
    Reasoning,
    Request,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolResultBlock,
    ToolUseBlock,
)
from ..errors import GatewayError, UnsupportedFeature
from ..shared import guess_image_type, split_data_url
from .wire import _content_text, _parse_arguments


def decode_request(codec, body: dict, *, require_max_tokens: bool = True) -> Request:
    if not isinstance(body, dict):
        raise GatewayError("invalid_request", "Request body must be a JSON object.", 400)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError("invalid_request", "model is required", 400)
    raw_messages = body.get("messages") or []
    if not isinstance(raw_messages, list):
        raise GatewayError("invalid_request", "messages must be a list", 400)

    system: list[TextBlock] = []
    messages: list[Message] = []
    counter = 0
    pending: list[tuple[str, str]] = []  # (id, name) of the last assistant turn's unanswered calls

    for raw in raw_messages:
        if not isinstance(raw, dict):
            raise GatewayError("invalid_request", "each message must be an object", 400)
        role = raw.get("role")
        text = _content_text(raw.get("content"))
        if role == "system":
            # The canonical model has one system prompt: system messages are hoisted in order.
            if text:
                system.append(TextBlock(text))
            continue
        if role == "assistant":
            blocks: list[Block] = []
            if raw.get("thinking"):
                blocks.append(ThinkingBlock(str(raw["thinking"])))
            if text:
                blocks.append(TextBlock(text))
            pending = []
            for call in raw.get("tool_calls") or []:
                fn = (call or {}).get("function") or {}
                call_id = call.get("id") or "call_%d" % counter
                counter += 1
                name = fn.get("name") or ""
                blocks.append(
                    ToolUseBlock(id=str(call_id), name=name, input=_parse_arguments(fn.get("arguments")))
                )
                pending.append((str(call_id), name))
            for image in raw.get("images") or []:
                blocks.append(ImageBlock(media_type=guess_image_type(image), data=image))
            if blocks:
                messages.append(Message("assistant", blocks))
            continue
        if role == "tool":
            match = None
            wanted_id = raw.get("tool_call_id")
            wanted_name = raw.get("tool_name") or raw.get("name")
            for i, (cid, cname) in enumerate(pending):
                if (wanted_id and cid == wanted_id) or (
                    not wanted_id and (not wanted_name or cname == wanted_name)
                ):
                    match = pending.pop(i)
                    break
            if match is None and pending and not wanted_id:
                match = pending.pop(0)
            tool_use_id = match[0] if match else wanted_id
            result_blocks: list[Block] = [TextBlock(text)] if text else []
            for image in raw.get("images") or []:
                result_blocks.append(ImageBlock(media_type=guess_image_type(image), data=image))
            if tool_use_id:
                block: Block = ToolResultBlock(tool_use_id=str(tool_use_id), content=result_blocks)
            else:
                # A tool message with no call to answer: keep its text rather than
                # invent a tool_result that no upstream would accept.
                block = TextBlock("Tool result%s:\n%s" % (" (%s)" % wanted_name if wanted_name else "", text))
            # Consecutive tool messages share one canonical user turn, tool results first.
            last = messages[-1] if messages else None
            if last and last.role == "user" and last.content and isinstance(last.content[0], ToolResultBlock):
                if isinstance(block, ToolResultBlock):
                    at = 0
                    while at < len(last.content) and isinstance(last.content[at], ToolResultBlock):
                        at += 1
                    last.content.insert(at, block)
                else:
                    last.content.append(block)
            else:
                messages.append(Message("user", [block]))
            continue
        # user (and unknown roles, which Ollama's templates treat as user text)
        blocks = [ImageBlock(media_type=guess_image_type(img), data=img) for img in raw.get("images") or []]
        if text:
            blocks.append(TextBlock(text))
        if blocks:
            messages.append(Message("user", blocks))

    tools = None
    if body.get("tools") is not None:
        tools = []
        for t in body.get("tools") or []:
            fn = (t or {}).get("function") or {}
            if not fn.get("name"):
                raise GatewayError("invalid_request", "tool without a function name", 400)
            tools.append(
                Tool(
                    name=fn["name"],
                    description=fn.get("description"),
                    input_schema=fn.get("parameters") or {"type": "object", "properties": {}},
                )
            )

    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise GatewayError("invalid_request", "options must be an object", 400)
    extra_options = {k: v for k, v in options.items() if k not in _CANONICAL_OPTIONS}
    max_tokens = None
    num_predict = options.get("num_predict")
    if isinstance(num_predict, int) and num_predict > 0:
        max_tokens = num_predict
    elif num_predict is not None:
        extra_options["num_predict"] = num_predict  # -1 (infinite) / -2 (fill context) have no canonical form
    stop = options.get("stop")
    if isinstance(stop, str):
        stop = [stop]

    reasoning = None
    think = body.get("think")
    if think is True:
        reasoning = Reasoning(enabled=True)
    elif think is False:
        reasoning = Reasoning(enabled=False)
    elif isinstance(think, str) and think:
        reasoning = Reasoning(enabled=True, effort=think)

    response_format = None
    fmt = body.get("format")
    if fmt == "json":
        response_format = {"type": "json_object"}
    elif isinstance(fmt, dict):
        response_format = {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt}}

    extra = {k: v for k, v in body.items() if k not in _KNOWN_KEYS}
    if extra_options:
        extra["options"] = extra_options
    stream_options = body.get("stream_options") or {}

    return Request(
        model=model,
        messages=messages,
        system=system,
        tools=tools,
        max_tokens=max_tokens,
        temperature=options.get("temperature"),
        top_p=options.get("top_p"),
        stop=stop,
        stream=bool(body.get("stream", True)),  # Ollama streams unless told not to
        stream_include_usage=bool(isinstance(stream_options, dict) and stream_options.get("include_usage")),
        reasoning=reasoning,
        response_format=response_format,
        extra=extra,
        source_format=codec.name,
    )


def encode_request(codec, request: Request) -> dict:
    messages: list[dict] = []
    if request.system:
        messages.append({"role": "system", "content": "\n\n".join(b.text for b in request.system)})
    tool_names: dict[str, str] = {}
    for message in request.messages:
        if message.role == "assistant":
            out: dict = {"role": "assistant", "content": ""}
            texts, thinking, calls, images = [], [], [], []
            for block in message.content:
                if isinstance(block, TextBlock):
                    texts.append(block.text)
                elif isinstance(block, ThinkingBlock):
                    thinking.append(block.thinking)
                elif isinstance(block, ToolUseBlock):
                    tool_names[block.id] = block.name
                    calls.append({"function": {"name": block.name, "arguments": block.input or {}}})
                elif isinstance(block, ImageBlock):
                    images.append(_image_data(block))
                # RedactedThinkingBlock: opaque to Ollama, dropped.
            out["content"] = "".join(texts)
            if thinking:
                out["thinking"] = "".join(thinking)
            if calls:
                out["tool_calls"] = calls
            if images:
                out["images"] = images
            messages.append(out)
            continue
        texts, images = [], []
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                # Tool results become `tool` messages, in order, before the turn's other content.
                result_texts = [b.text for b in block.content if isinstance(b, TextBlock)]
                result_images = [_image_data(b) for b in block.content if isinstance(b, ImageBlock)]
                content = "\n".join(result_texts)
                if block.is_error:
                    # Ollama has no error flag on tool results; say it in the text.
                    content = "Error: " + content if content else "Error"
                tool_msg: dict = {"role": "tool", "content": content}
                if block.tool_use_id in tool_names:
                    tool_msg["tool_name"] = tool_names[block.tool_use_id]
                if result_images:
                    tool_msg["images"] = result_images
                messages.append(tool_msg)
            elif isinstance(block, TextBlock):
                texts.append(block.text)
            elif isinstance(block, ImageBlock):
                images.append(_image_data(block))
        if texts or images:
            user: dict = {"role": "user", "content": "\n\n".join(texts)}
            if images:
                user["images"] = images
            messages.append(user)

    body: dict = {}
    if request.source_format == codec.name:
        # Same format: keep the client's unknown top-level fields (keep_alive, ...).
        body.update({k: v for k, v in request.extra.items() if k != "options"})
    body["model"] = request.model
    body["messages"] = messages
    if request.tools is not None and not (request.tool_choice and request.tool_choice.type == "none"):
        # tool_choice "none" is expressed by not offering the tools; "any"/"tool" cannot be
        # forced on Ollama and degrade to "auto".
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description or "",
                    "parameters": t.input_schema,
                },
            }
            for t in request.tools
        ]
    body["stream"] = bool(request.stream)  # always explicit: Ollama's default is true
    if request.reasoning is not None:
        if not request.reasoning.enabled:
            body["think"] = False
        elif request.reasoning.effort in ("low", "medium", "high"):
            body["think"] = request.reasoning.effort
        else:
            body["think"] = True
    rf = request.response_format or {}
    if rf.get("type") == "json_object":
        body["format"] = "json"
    elif rf.get("type") == "json_schema":
        schema = (rf.get("json_schema") or {}).get("schema")
        body["format"] = schema if isinstance(schema, dict) else "json"
    options: dict = {}
    if request.source_format == codec.name and isinstance(request.extra.get("options"), dict):
        options.update(request.extra["options"])
    if request.max_tokens is not None:
        options["num_predict"] = request.max_tokens
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.top_p is not None:
        options["top_p"] = request.top_p
    if request.stop:
        options["stop"] = list(request.stop)
    if options:
        body["options"] = options
    return body


# Options mapped to canonical fields; everything else in `options` rides in Request.extra["options"].
_CANONICAL_OPTIONS = ("temperature", "top_p", "stop", "num_predict")


# Top-level request keys this codec understands (the rest go to Request.extra).
_KNOWN_KEYS = {"model", "messages", "tools", "stream", "think", "format", "options", "stream_options"}


def _image_data(block: ImageBlock) -> str:
    if block.data:
        return block.data
    if block.url:
        parsed = split_data_url(block.url)
        if parsed:
            return parsed[1]
    raise UnsupportedFeature("Ollama accepts only base64 images, not image URLs.")
