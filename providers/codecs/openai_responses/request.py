"""OpenAI Responses API: requests: decode_request / encode_request."""

from __future__ import annotations

import orjson

from ..canonical import (
    Block,
    ImageBlock,
    Message,
    Reasoning,
    Request,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)
from ..errors import InvalidRequest, UnsupportedFeature
from .wire import (
    LAYOUT_KEY,
    _encode_format,
    _encode_tool_choice,
    _encode_tools,
    _namespace_map,
    _summary_text,
    join_namespace,
    reasoning_block,
)


# ------------------------------------------------------------------ requests
def decode_request(codec, body: dict, *, require_max_tokens: bool = True) -> Request:
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string", code="missing_required_parameter")

    system: list[TextBlock] = []
    layout: list[list] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise InvalidRequest("'instructions' must be a string")
        system.append(TextBlock(instructions))
        layout.append(["instructions"])

    messages = _decode_input(body.get("input"), system, layout)

    req = Request(model=model, messages=messages, system=system, source_format=NAME)
    extra = {k: v for k, v in body.items() if k not in _KNOWN_FIELDS}
    if "text" in extra:
        req.response_format = _decode_text(extra["text"])
    if "tools" in body and body["tools"] is not None:
        req.tools = _decode_tools(body["tools"])
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise InvalidRequest("'parallel_tool_calls' must be a boolean")
    req.tool_choice, raw_choice = _decode_tool_choice(body.get("tool_choice"), parallel)
    if raw_choice is not None:
        extra["_tool_choice"] = raw_choice
    if parallel is not None:
        extra["_parallel_tool_calls"] = parallel

    mot = body.get("max_output_tokens")
    if mot is not None:
        if not _is_int(mot) or mot < 1:
            raise InvalidRequest("'max_output_tokens' must be a positive integer", code="invalid_value")
        req.max_tokens = mot
    for field, hi in (("temperature", 2), ("top_p", 1)):
        v = body.get(field)
        if v is not None:
            if not _is_num(v) or not 0 <= v <= hi:
                raise InvalidRequest(f"'{field}' must be a number between 0 and {hi}", code="invalid_value")
            setattr(req, field, v)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean")
    req.stream = bool(stream)
    req.stream_include_usage = True  # Responses streams always carry usage
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise InvalidRequest("'reasoning' must be an object")
        effort = reasoning.get("effort")
        summary = reasoning.get("summary", reasoning.get("generate_summary"))
        if effort is not None and not isinstance(effort, str):
            raise InvalidRequest("'reasoning.effort' must be a string")
        if summary is not None and not isinstance(summary, str):
            raise InvalidRequest("'reasoning.summary' must be a string")
        req.reasoning = Reasoning(enabled=effort != "none", effort=effort, summary=summary)
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InvalidRequest("'metadata' must be an object")
        req.metadata = metadata
    if layout:
        extra[LAYOUT_KEY] = layout
    req.extra = extra
    return req


def _decode_text(text) -> dict | None:
    if not isinstance(text, dict):
        raise InvalidRequest("'text' must be an object")
    fmt = text.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise InvalidRequest("'text.format' must be an object")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequest("'text.format.schema' is required for json_schema")
        js = {"name": fmt.get("name") or "response", "schema": schema}
        if fmt.get("strict") is not None:
            js["strict"] = fmt["strict"]
        if fmt.get("description") is not None:
            js["description"] = fmt["description"]
        return {"type": "json_schema", "json_schema": js}
    raise InvalidRequest(f"'text.format.type' '{kind}' is not supported", code="invalid_value")


def _decode_input(raw, system: list[TextBlock], layout: list) -> list[Message]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [Message("user", [TextBlock(raw)])]
    if not isinstance(raw, list):
        raise InvalidRequest("'input' must be a string or an array of input items")
    messages: list[Message] = []
    mergeable = False

    def assistant() -> Message:
        nonlocal mergeable
        if not (mergeable and messages and messages[-1].role == "assistant"):
            messages.append(Message("assistant", []))
        mergeable = True
        return messages[-1]

    for i, item in enumerate(raw):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object")
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"
        if kind == "message":
            role = item.get("role")
            if role in ("system", "developer"):
                blocks = _decode_parts(item.get("content"), where, role)
                system.extend(blocks)  # only TextBlocks get here
                layout.append(["msg", role, len(blocks), len(messages)])
                mergeable = False
            elif role == "user":
                messages.append(Message("user", _decode_parts(item.get("content"), where, role)))
                mergeable = False
            elif role == "assistant":
                assistant().content.extend(_decode_parts(item.get("content"), where, role))
            else:
                raise InvalidRequest(
                    f"{where}.role must be one of user, assistant, system, developer", code="invalid_value"
                )
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequest(f"{where}.call_id is required")
            if not isinstance(name, str) or not name:
                raise InvalidRequest(f"{where}.name is required")
            ns = item.get("namespace")
            if isinstance(ns, str) and ns:
                name = join_namespace(ns, name)
            args = _parse_arguments(item.get("arguments"), where)
            assistant().content.append(ToolUseBlock(id=call_id, name=name, input=args))
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequest(f"{where}.call_id is required")
            output = item.get("output")
            if isinstance(output, list):
                content = _decode_parts(output, where, "user")
            elif isinstance(output, str):
                content = [TextBlock(output)]
            elif output is None:
                content = []
            else:
                content = [TextBlock(orjson.dumps(output).decode())]
            block = ToolResultBlock(tool_use_id=call_id, content=content)
            last = messages[-1] if messages else None
            if (
                mergeable
                and last is not None
                and last.role == "user"
                and last.content
                and all(isinstance(b, ToolResultBlock) for b in last.content)
            ):
                last.content.append(block)
            else:
                messages.append(Message("user", [block]))
            mergeable = True
        elif kind == "reasoning":
            enc = item.get("encrypted_content")
            assistant().content.append(reasoning_block(item.get("id"), enc, _summary_text(item)))
        elif isinstance(kind, str):
            # Items the canonical model cannot express (hosted tool calls, item_reference,
            # custom tool calls, compaction...): kept for a same-format upstream only.
            layout.append(["item", item, len(messages)])
            mergeable = False
        else:
            raise InvalidRequest(f"{where}.type is required")
    return messages


def encode_request(codec, request: Request) -> dict:
    if request.stop:
        raise UnsupportedFeature("the Responses API does not support stop sequences")
    same = request.source_format == NAME
    extra = request.extra if same else {}
    ns_map = _namespace_map(request.tools)
    body: dict = {"model": request.model}

    layout = extra.get(LAYOUT_KEY) or []
    sys_entries = [e for e in layout if e[0] in ("instructions", "msg")]
    inserts: dict[int, list[dict]] = {}
    n_sys = sum(1 if e[0] == "instructions" else e[2] for e in sys_entries)
    use_layout = bool(sys_entries) and n_sys == len(request.system)
    if not use_layout and request.system:
        body["instructions"] = "\n\n".join(b.text for b in request.system)
    pos_sys = 0
    for e in layout:
        if e[0] == "instructions":
            if use_layout:
                body["instructions"] = request.system[pos_sys].text
                pos_sys += 1
        elif e[0] == "msg":
            if use_layout:
                parts = [
                    {"type": "input_text", "text": b.text} for b in request.system[pos_sys : pos_sys + e[2]]
                ]
                pos_sys += e[2]
                inserts.setdefault(e[3], []).append({"type": "message", "role": e[1], "content": parts})
        else:
            inserts.setdefault(e[2], []).append(e[1])

    items: list[dict] = []
    for idx, msg in enumerate(request.messages):
        if idx in inserts:
            items.extend(inserts.pop(idx))
        _encode_message(msg, items, ns_map)
    for pos in sorted(inserts):  # positions past the last message (or the list was shortened)
        items.extend(inserts[pos])
    body["input"] = items

    if request.tools is not None:
        body["tools"] = _encode_tools(request.tools, same)
    if request.tool_choice is not None:
        raw_choice = extra.get("_tool_choice")
        body["tool_choice"] = (
            raw_choice if raw_choice is not None else _encode_tool_choice(request.tool_choice, ns_map)
        )
        if "_parallel_tool_calls" in extra or request.tool_choice.disable_parallel_tool_use or request.tools:
            body["parallel_tool_calls"] = not request.tool_choice.disable_parallel_tool_use
    elif "_parallel_tool_calls" in extra:
        body["parallel_tool_calls"] = extra["_parallel_tool_calls"]
    if request.max_tokens is not None:
        body["max_output_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p

    r = request.reasoning
    if r is not None:
        effort = r.effort
        if effort is None and r.budget_tokens:
            effort = "low" if r.budget_tokens < 4096 else "medium" if r.budget_tokens < 16384 else "high"
        if r.enabled or effort == "none":
            reasoning = {}
            if effort is not None:
                reasoning["effort"] = effort
            if r.summary is not None:
                reasoning["summary"] = r.summary
            body["reasoning"] = reasoning
            if not same and r.enabled:
                # we run upstream with store=false: ask for the reasoning state so thinking
                # blocks can be replayed on the next turn
                body["include"] = ["reasoning.encrypted_content"]

    text = dict(extra["text"]) if isinstance(extra.get("text"), dict) else {}
    if request.response_format:
        text["format"] = _encode_format(request.response_format)
    elif (text.get("format") or {}).get("type") not in (None, "text"):
        text.pop("format")
    if text:
        body["text"] = text
    if isinstance(request.metadata, dict) and request.metadata:
        body["metadata"] = request.metadata
    body["stream"] = bool(request.stream)
    body["store"] = False
    for k, v in extra.items():
        if k[:1] != "_" and k != "text":
            body[k] = v
    return body


def _encode_message(msg: Message, items: list[dict], ns_map: dict) -> None:
    parts: list[dict] = []
    if msg.role == "user":
        for b in msg.content:
            if isinstance(b, TextBlock):
                parts.append({"type": "input_text", "text": b.text})
            elif isinstance(b, ImageBlock):
                parts.append(_encode_image(b))
            elif isinstance(b, ToolResultBlock):
                if parts:
                    items.append({"type": "message", "role": "user", "content": parts})
                    parts = []
                items.append(
                    {
                        "type": "function_call_output",
                        "call_id": b.tool_use_id,
                        "output": _tool_output(b.content),
                    }
                )
        if parts or not msg.content:
            items.append({"type": "message", "role": "user", "content": parts})
        return
    for b in msg.content:
        if isinstance(b, TextBlock):
            parts.append({"type": "output_text", "text": b.text})
            continue
        if parts:
            items.append({"type": "message", "role": "assistant", "content": parts})
            parts = []
        if isinstance(b, ToolUseBlock):
            item = {
                "type": "function_call",
                "call_id": b.id,
                "name": b.name,
                "arguments": orjson.dumps(b.input).decode(),
            }
            if b.name in ns_map:
                item["namespace"], item["name"] = ns_map[b.name]
            items.append(item)
        elif isinstance(b, ThinkingBlock):
            sig = b.signature or ""
            if "|" not in sig:
                continue  # foreign or unsigned thinking: OpenAI cannot verify it
            item_id, _, enc = sig.partition("|")
            if not (item_id or enc):
                continue
            item = {"type": "reasoning"}
            if not enc:
                item["id"] = item_id
            item["summary"] = [{"type": "summary_text", "text": b.thinking}] if b.thinking else []
            if enc:
                item["encrypted_content"] = enc
            items.append(item)
        elif isinstance(b, ImageBlock):
            raise UnsupportedFeature("images in assistant messages are not supported by the Responses API")
        # RedactedThinkingBlock: Anthropic-only, dropped
    if parts:
        items.append({"type": "message", "role": "assistant", "content": parts})


NAME = "openai_responses"


_KNOWN_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_output_tokens",
        "temperature",
        "top_p",
        "reasoning",
        "stream",
        "metadata",
    }
)


_FUNCTION_KEYS = ("type", "name", "description", "parameters")


_TOOL_CHOICE_IN = {"auto": "auto", "none": "none", "required": "any"}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _decode_function_tool(
    raw: dict, where: str, namespace: str | None = None, namespace_description: str | None = None
) -> Tool:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(
            f"{where}.name is required for function tools", code="missing_required_parameter"
        )
    params = raw.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise InvalidRequest(f"{where}.parameters must be a JSON schema object")
    desc = raw.get("description")
    if desc is not None and not isinstance(desc, str):
        raise InvalidRequest(f"{where}.description must be a string")
    extra = {k: v for k, v in raw.items() if k not in _FUNCTION_KEYS}
    if namespace:
        extra["namespace"] = namespace
        extra["namespace_tool_name"] = name
        if namespace_description is not None:
            extra["namespace_description"] = namespace_description
        name = join_namespace(namespace, name)
    tool = Tool(name=name, description=desc, extra=extra)
    if params is not None:
        tool.input_schema = params
    return tool


def _decode_tools(raw_tools) -> list[Tool]:
    if not isinstance(raw_tools, list):
        raise InvalidRequest("'tools' must be an array")
    tools: list[Tool] = []
    for i, raw in enumerate(raw_tools):
        where = f"tools[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            raise InvalidRequest(f"{where} must be an object with a 'type'")
        kind = raw["type"]
        if kind == "function":
            tools.append(_decode_function_tool(raw, where))
        elif kind == "namespace":
            ns, nested = raw.get("name"), raw.get("tools")
            if not isinstance(ns, str) or not ns:
                raise InvalidRequest(f"{where}.name is required for namespace tools")
            if (
                isinstance(nested, list)
                and nested
                and all(isinstance(t, dict) and t.get("type") == "function" for t in nested)
                and set(raw) <= {"type", "name", "description", "tools"}
            ):
                for j, t in enumerate(nested):
                    tools.append(_decode_function_tool(t, f"{where}.tools[{j}]", ns, raw.get("description")))
            else:
                tools.append(Tool(name=ns, extra={"hosted": raw}))
        else:
            tools.append(
                Tool(
                    name=raw.get("name") if isinstance(raw.get("name"), str) else kind, extra={"hosted": raw}
                )
            )
    return tools


def _decode_tool_choice(raw, parallel) -> tuple[ToolChoice | None, object]:
    """(canonical choice, raw value to keep for a same-format upstream or None)."""
    disable = parallel is False
    if raw is None:
        return (ToolChoice("auto", disable_parallel_tool_use=True) if disable else None), None
    if isinstance(raw, str):
        if raw not in _TOOL_CHOICE_IN:
            raise InvalidRequest(
                "'tool_choice' must be 'auto', 'none', 'required' or an object", code="invalid_value"
            )
        return ToolChoice(_TOOL_CHOICE_IN[raw], disable_parallel_tool_use=disable), None
    if isinstance(raw, dict) and isinstance(raw.get("type"), str):
        if raw["type"] == "function":
            name = raw.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequest("'tool_choice.name' is required for function tool choice")
            if isinstance(raw.get("namespace"), str) and raw["namespace"]:
                return ToolChoice(
                    "tool", name=join_namespace(raw["namespace"], name), disable_parallel_tool_use=disable
                ), raw
            return ToolChoice("tool", name=name, disable_parallel_tool_use=disable), None
        if raw["type"] == "allowed_tools":
            kind = "any" if raw.get("mode") == "required" else "auto"
            return ToolChoice(kind, disable_parallel_tool_use=disable), raw
        # hosted tool choice ({"type": "web_search_preview"}, mcp, custom...): force "a tool"
        return ToolChoice("any", disable_parallel_tool_use=disable), raw
    raise InvalidRequest("'tool_choice' must be a string or an object with a 'type'")


def _decode_image(part: dict, where: str) -> ImageBlock:
    url = part.get("image_url")
    if isinstance(url, dict):
        url = url.get("url")
    detail = part.get("detail")
    if not isinstance(url, str) or not url:
        if part.get("file_id"):
            raise UnsupportedFeature(
                f"{where}: input_image with file_id is not supported; send image_url "
                "(https or data: URL) instead"
            )
        raise InvalidRequest(f"{where}.image_url is required")
    if url.startswith("data:"):
        header, sep, data = url.partition(",")
        if sep and header.endswith(";base64"):
            return ImageBlock(media_type=header[5:-7] or None, data=data, detail=detail)
    return ImageBlock(url=url, detail=detail)


def _decode_parts(content, where: str, role: str) -> list[Block]:
    if isinstance(content, str):
        return [TextBlock(content)]
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or an array of content parts")
    blocks: list[Block] = []
    for j, part in enumerate(content):
        pw = f"{where}.content[{j}]"
        if not isinstance(part, dict):
            raise InvalidRequest(f"{pw} must be an object")
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidRequest(f"{pw}.text must be a string")
            blocks.append(TextBlock(text))
        elif kind == "refusal":
            blocks.append(TextBlock(part.get("refusal") or ""))
        elif kind == "input_image":
            if role in ("system", "developer"):
                raise UnsupportedFeature(f"{pw}: images in {role} messages are not supported")
            blocks.append(_decode_image(part, pw))
        elif kind in ("input_file", "input_audio"):
            raise UnsupportedFeature(f"{pw}: content part type '{kind}' is not supported")
        else:
            raise InvalidRequest(f"{pw}.type '{kind}' is not a valid content part type")
    return blocks


def _image_url(block: ImageBlock) -> str:
    if block.url:
        return block.url
    return f"data:{block.media_type or 'image/png'};base64,{block.data or ''}"


def _encode_image(block: ImageBlock) -> dict:
    return {"type": "input_image", "image_url": _image_url(block), "detail": block.detail or "auto"}


def _tool_output(blocks: list[Block]):
    if all(isinstance(b, TextBlock) for b in blocks):
        return "\n".join(b.text for b in blocks)
    out = []
    for b in blocks:
        if isinstance(b, TextBlock):
            out.append({"type": "input_text", "text": b.text})
        elif isinstance(b, ImageBlock):
            out.append(_encode_image(b))
    return out


def _parse_arguments(args, where: str) -> dict:
    if isinstance(args, dict):
        return args
    if args is None or args == "":
        return {}
    if not isinstance(args, str):
        raise InvalidRequest(f"{where}.arguments must be a JSON string")
    try:
        value = orjson.loads(args)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            f"{where}.arguments is not valid JSON", code="invalid_function_arguments"
        ) from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}.arguments must encode a JSON object")
    return value
