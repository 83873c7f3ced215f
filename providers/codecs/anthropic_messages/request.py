"""Anthropic Messages API: requests: decode_request / encode_request."""

from __future__ import annotations

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
from .wire import _encode_block, _encode_text


def decode_request(codec, body: dict, *, require_max_tokens: bool = True) -> Request:
    """`require_max_tokens=False` serves `/v1/messages/count_tokens`, whose body has none."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Field required (a non-empty string)")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise InvalidRequest("messages: Field required (a non-empty list)")

    system = _system_blocks(body.get("system"), "system")
    messages: list[Message] = []
    tool_ids: set[str] = set()
    orphans: list[str] = []
    for i, raw in enumerate(raw_messages):
        where = f"messages.{i}"
        if not isinstance(raw, dict):
            raise InvalidRequest(f"{where}: Input should be a valid dictionary")
        role = raw.get("role")
        content = raw.get("content")
        if role == "system":
            # Claude Code's mid-conversation system entries (beta
            # mid-conversation-system): the canonical model has system text only
            # at the top, so they are appended there.
            system.extend(_system_blocks(content, f"{where}.content"))
            continue
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"{where}.role: expected 'user' or 'assistant', got {role!r}")
        if isinstance(content, str):
            blocks: list[Block] = [TextBlock(content)]
        elif isinstance(content, list):
            blocks = [_decode_block(b, f"{where}.content.{j}") for j, b in enumerate(content)]
        else:
            raise InvalidRequest(f"{where}.content: Input should be a string or a list of blocks")
        if role == "assistant":
            for b in blocks:
                if b.type == "tool_use":
                    tool_ids.add(b.id)
        else:
            for b in blocks:
                if b.type == "tool_result" and b.tool_use_id not in tool_ids:
                    orphans.append(f"{where}: {b.tool_use_id}")
        messages.append(Message(role, blocks))
    if orphans:
        raise InvalidRequest(
            "tool_result block(s) found without a matching tool_use in an earlier "
            "assistant message: " + ", ".join(orphans[:5])
        )

    req = Request(model=model, messages=messages, system=system, source_format=FORMAT)

    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequest("tools: Input should be a valid list")
        req.tools = [_decode_tool(t, f"tools.{i}") for i, t in enumerate(tools)]
    req.tool_choice = _decode_tool_choice(body.get("tool_choice"))

    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        if require_max_tokens:
            raise InvalidRequest("max_tokens: Field required")
    elif not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest("max_tokens: Input should be a positive integer")
    req.max_tokens = max_tokens

    for key in ("temperature", "top_p"):
        v = body.get(key)
        if v is not None and not _is_number(v):
            raise InvalidRequest(f"{key}: Input should be a valid number")
    req.temperature = body.get("temperature")
    req.top_p = body.get("top_p")
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequest("stop_sequences: Input should be a list of strings")
        req.stop = stop
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream: Input should be a valid boolean")
    req.stream = stream
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidRequest("metadata: Input should be a valid dictionary")
    req.metadata = metadata

    extra = {k: v for k, v in body.items() if k not in _REQUEST_KEYS}

    output_config = body.get("output_config")
    effort = None
    if output_config is not None:
        if not isinstance(output_config, dict):
            raise InvalidRequest("output_config: Input should be a valid dictionary")
        effort = output_config.get("effort")
        rest = {k: v for k, v in output_config.items() if k != "effort"}
        fmt = rest.get("format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and set(fmt) <= {"type", "schema"}:
            # Structured output: held in the canonical (OpenAI-shaped) field so it
            # survives translation to other formats; encode_request maps it back.
            req.response_format = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": fmt.get("schema") or {}},
            }
            del rest["format"]
        if rest:
            extra["output_config"] = rest

    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict):
            raise InvalidRequest("thinking: Input should be a valid dictionary")
        kind = thinking.get("type")
        if kind == "enabled":
            budget = thinking.get("budget_tokens")
            if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool)):
                raise InvalidRequest("thinking.budget_tokens: Input should be a valid integer")
            req.reasoning = Reasoning(budget_tokens=budget, effort=effort)
        elif kind == "adaptive":
            req.reasoning = Reasoning(effort=effort)
            # Remember the shape: an Anthropic upstream gets adaptive back (the
            # client picked a model that supports it); other formats use effort.
            extra["thinking"] = thinking
        elif kind == "disabled":
            extra["thinking"] = thinking
            if effort is not None:  # effort also steers non-thinking output
                extra.setdefault("output_config", {})["effort"] = effort
        else:
            raise InvalidRequest(f"thinking.type: expected 'enabled', 'adaptive' or 'disabled', got {kind!r}")
    elif effort is not None:
        # effort without thinking (Opus 4.5 style): kept for Anthropic upstreams only
        extra.setdefault("output_config", {})["effort"] = effort
    req.extra = extra
    return req


def encode_request(codec, request: Request) -> dict:
    same = request.source_format == FORMAT
    extra = request.extra
    if not same and extra:
        n = extra.get("n")
        if isinstance(n, int) and n > 1:
            raise UnsupportedFeature("n>1 is not supported by Anthropic upstreams")
        if extra.get("logprobs") or extra.get("top_logprobs"):
            raise UnsupportedFeature("logprobs are not supported by Anthropic upstreams")
        # seed, frequency_penalty, presence_penalty, logit_bias, store, ...:
        # sampling hints Anthropic has no equivalent for; dropping them changes
        # nothing the client could rely on, whereas a 400 would break the agent.

    body: dict = {"model": request.model}

    messages: list[dict] = []
    for m in request.messages:
        blocks = []
        for b in m.content:
            enc = _encode_block(b)
            if enc is not None:
                blocks.append(enc)
        if not blocks:
            continue  # Anthropic rejects messages with empty content
        if messages and messages[-1]["role"] == m.role:
            # Anthropic wants alternating roles (OpenAI tool messages become
            # consecutive user turns)
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": m.role, "content": blocks})
    for m in messages:
        # tool_result blocks must come first in their user message
        if m["role"] == "user" and len(m["content"]) > 1:
            content = m["content"]
            seen_other = False
            for b in content:
                if b["type"] != "tool_result":
                    seen_other = True
                elif seen_other:
                    m["content"] = [b for b in content if b["type"] == "tool_result"] + [
                        b for b in content if b["type"] != "tool_result"
                    ]
                    break
    body["messages"] = messages

    system = [_encode_text(b) for b in request.system if b.text]
    if system:
        body["system"] = system

    if request.tools is not None:
        body["tools"] = [_encode_tool(t, same) for t in request.tools]
        tc = request.tool_choice
        if tc is not None and request.tools:
            choice: dict = {"type": tc.type}
            if tc.type == "tool":
                choice["name"] = tc.name
            if tc.disable_parallel_tool_use and tc.type != "none":
                choice["disable_parallel_tool_use"] = True
            body["tool_choice"] = choice

    max_tokens = request.max_tokens
    temperature, top_p = request.temperature, request.top_p
    output_config: dict = {}
    extra_oc = extra.get("output_config") if same else None
    if isinstance(extra_oc, dict):
        output_config.update(extra_oc)

    reasoning = request.reasoning
    if reasoning is not None and not reasoning.enabled:
        reasoning = None
    if reasoning is not None and reasoning.effort in ("none",) and reasoning.budget_tokens is None:
        reasoning = None
    kept = extra.get("thinking") if same else None
    kept_kind = kept.get("type") if isinstance(kept, dict) else None
    thinking_on = False
    if reasoning is None:
        if kept_kind == "disabled":
            body["thinking"] = kept
    elif kept_kind == "adaptive" and reasoning.budget_tokens is None:
        body["thinking"] = kept
        if reasoning.effort:
            output_config["effort"] = reasoning.effort
        thinking_on = True
    else:
        if reasoning.budget_tokens is not None:
            budget, max_tokens = _thinking_budget(reasoning.budget_tokens, max_tokens, True)
        else:
            wanted = EFFORT_BUDGETS.get(reasoning.effort or "medium", EFFORT_BUDGETS["medium"])
            budget, max_tokens = _thinking_budget(wanted, max_tokens, False)
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if same and reasoning.effort:
            output_config["effort"] = reasoning.effort
        thinking_on = True
    if thinking_on:
        # Anthropic rejects temperature (other than 1) and top_p below 0.95 while
        # extended thinking is on; the thinking request is what the client asked
        # for explicitly, sampling knobs are secondary.
        temperature = None
        if top_p is not None and top_p < 0.95:
            top_p = None
    body["max_tokens"] = max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS
    if temperature is not None:
        body["temperature"] = temperature
    if top_p is not None:
        body["top_p"] = top_p
    if request.stop:
        body["stop_sequences"] = request.stop
    if request.stream:
        body["stream"] = True

    rf = request.response_format
    if rf and rf.get("type") == "json_schema":
        js = rf.get("json_schema") or {}
        schema = js.get("schema") if isinstance(js, dict) else None
        output_config["format"] = {"type": "json_schema", "schema": schema or {"type": "object"}}
    # json_object has no Anthropic equivalent; the prompt already asks for JSON
    # (OpenAI requires it to), so it is dropped rather than refused.
    if output_config:
        body["output_config"] = output_config

    if request.metadata:
        if same:
            body["metadata"] = request.metadata
        elif isinstance(request.metadata.get("user_id"), str):
            # Anthropic accepts only metadata.user_id; other keys are a 400
            body["metadata"] = {"user_id": request.metadata["user_id"]}
    elif not same and isinstance(extra.get("user"), str):
        body["metadata"] = {"user_id": extra["user"]}

    if same:
        for k, v in extra.items():
            if k not in body and k not in ("thinking", "output_config"):
                body[k] = v
    return body


FORMAT = "anthropic_messages"


# Anthropic requires max_tokens; used when a client of another format sent none.
DEFAULT_MAX_TOKENS = 4096


# Room left for the visible answer when we must pick max_tokens around a thinking budget.
ANSWER_ROOM = 4096


MIN_THINKING_BUDGET = 1024  # Anthropic rejects smaller budgets


# OpenAI-style effort -> Anthropic thinking budget, for upstreams that only know budgets.
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576, "xhigh": 32768, "max": 32768}


_REQUEST_KEYS = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "max_tokens",
        "temperature",
        "top_p",
        "stop_sequences",
        "stream",
        "thinking",
        "metadata",
        "output_config",
    }
)


_TOOL_KEYS = frozenset({"name", "description", "input_schema", "cache_control"})


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _text_block(raw: dict, where: str) -> TextBlock:
    text = raw.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{where}.text: Input should be a valid string")
    return TextBlock(text, raw.get("cache_control"))


def _image_block(raw: dict, where: str) -> ImageBlock:
    src = raw.get("source")
    if not isinstance(src, dict):
        raise InvalidRequest(f"{where}.source: Field required")
    kind = src.get("type")
    if kind == "base64":
        return ImageBlock(
            media_type=src.get("media_type"), data=src.get("data"), cache_control=raw.get("cache_control")
        )
    if kind == "url":
        return ImageBlock(url=src.get("url"), cache_control=raw.get("cache_control"))
    raise InvalidRequest(
        f"{where}.source.type: image source type {kind!r} is not supported by the gateway (use base64 or url)"
    )


def _decode_block(raw, where: str) -> Block:
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where}: Input should be a valid dictionary")
    kind = raw.get("type")
    if kind == "text":
        return _text_block(raw, where)
    if kind == "tool_use":
        ident, name, inp = raw.get("id"), raw.get("name"), raw.get("input", {})
        if not isinstance(ident, str) or not isinstance(name, str):
            raise InvalidRequest(f"{where}: tool_use blocks need string 'id' and 'name'")
        if not isinstance(inp, dict):
            raise InvalidRequest(f"{where}.input: Input should be a valid dictionary")
        return ToolUseBlock(ident, name, inp, raw.get("cache_control"))
    if kind == "tool_result":
        ident = raw.get("tool_use_id")
        if not isinstance(ident, str):
            raise InvalidRequest(f"{where}.tool_use_id: Field required")
        content = raw.get("content")
        if content is None or content == "":
            blocks: list = []
        elif isinstance(content, str):
            blocks = [TextBlock(content)]
        elif isinstance(content, list):
            blocks = []
            for j, sub in enumerate(content):
                sub_where = f"{where}.content.{j}"
                sub_kind = sub.get("type") if isinstance(sub, dict) else None
                if sub_kind == "text":
                    blocks.append(_text_block(sub, sub_where))
                elif sub_kind == "image":
                    blocks.append(_image_block(sub, sub_where))
                else:
                    raise InvalidRequest(
                        f"{sub_where}.type: block type {sub_kind!r} inside tool_result is not "
                        "supported by the gateway (text and image are)"
                    )
        else:
            raise InvalidRequest(f"{where}.content: Input should be a string or a list of blocks")
        return ToolResultBlock(ident, blocks, bool(raw.get("is_error", False)), raw.get("cache_control"))
    if kind == "image":
        return _image_block(raw, where)
    if kind == "thinking":
        thinking = raw.get("thinking")
        if not isinstance(thinking, str):
            raise InvalidRequest(f"{where}.thinking: Input should be a valid string")
        return ThinkingBlock(thinking, raw.get("signature"))
    if kind == "redacted_thinking":
        data = raw.get("data")
        if not isinstance(data, str):
            raise InvalidRequest(f"{where}.data: Input should be a valid string")
        return RedactedThinkingBlock(data)
    # document, search_result, server_tool_use, web_search_tool_result, container_upload ...:
    # the canonical model cannot carry them to another format, and dropping them
    # silently would change what the model sees.
    raise InvalidRequest(
        f"{where}.type: content block type {kind!r} is not supported by the gateway "
        "when translating to another provider format"
    )


def _system_blocks(raw, where: str) -> list[TextBlock]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [TextBlock(raw)] if raw else []
    if isinstance(raw, list):
        out = []
        for j, b in enumerate(raw):
            if not isinstance(b, dict) or b.get("type") != "text":
                kind = b.get("type") if isinstance(b, dict) else type(b).__name__
                raise InvalidRequest(
                    f"{where}.{j}.type: only text blocks are allowed in system, got {kind!r}"
                )
            out.append(_text_block(b, f"{where}.{j}"))
        return out
    raise InvalidRequest(f"{where}: Input should be a string or a list of text blocks")


def _decode_tool(raw, where: str) -> Tool:
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where}: Input should be a valid dictionary")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name: Field required")
    tool = Tool(name=name, description=raw.get("description"), cache_control=raw.get("cache_control"))
    schema = raw.get("input_schema")
    if schema is not None:
        if not isinstance(schema, dict):
            raise InvalidRequest(f"{where}.input_schema: Input should be a valid dictionary")
        tool.input_schema = schema
    # eager_input_streaming, strict, defer_loading, `type` of server tools (web_search_2025...) ...
    extra = {k: v for k, v in raw.items() if k not in _TOOL_KEYS}
    if extra:
        tool.extra = extra
    return tool


def _decode_tool_choice(raw) -> ToolChoice | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRequest("tool_choice: Input should be a valid dictionary")
    kind = raw.get("type")
    if kind not in ("auto", "any", "tool", "none"):
        raise InvalidRequest(f"tool_choice.type: expected 'auto', 'any', 'tool' or 'none', got {kind!r}")
    name = raw.get("name")
    if kind == "tool" and not isinstance(name, str):
        raise InvalidRequest("tool_choice.name: Field required for tool_choice type 'tool'")
    return ToolChoice(
        kind, name if kind == "tool" else None, bool(raw.get("disable_parallel_tool_use", False))
    )


def _encode_tool(t: Tool, same_format: bool) -> dict:
    if t.extra and isinstance(t.extra.get("server_tool"), dict):
        return dict(t.extra["server_tool"])  # a hosted tool the gateway mapped to Anthropic's own
    extra = t.extra if same_format else None
    if extra and extra.get("type") not in (None, "custom"):
        # server tool (web_search_20250305, bash_20250124 ...): no input_schema
        out = {"name": t.name, **extra}
    else:
        out = {"name": t.name}
        if t.description is not None:
            out["description"] = t.description
        out["input_schema"] = t.input_schema
        if extra:
            out.update(extra)
    if t.cache_control:
        out["cache_control"] = t.cache_control
    return out


def _thinking_budget(requested: int, max_tokens: int | None, explicit: bool) -> tuple[int, int]:
    """Return (budget_tokens, max_tokens) satisfying Anthropic's 1024 <= budget < max_tokens.

    - max_tokens unknown: budget + ANSWER_ROOM (the answer still gets room).
    - explicit budget (Anthropic-shaped client): clamp the budget just below the
      client's max_tokens, which stays the hard cap the client asked for
      (Claude Code sends budget 31999 with max_tokens 32000).
    - effort-derived budget: at most half of max_tokens, so thinking cannot eat
      the whole answer (OpenAI's max_completion_tokens covers both as well).
    - if max_tokens is at most the minimum budget (1024), no budget fits below it:
      max_tokens is raised to budget + max_tokens (the answer keeps the room the
      client asked for) rather than sending a request Anthropic rejects.
    """
    budget = max(MIN_THINKING_BUDGET, requested)
    if max_tokens is None:
        return budget, budget + ANSWER_ROOM
    if not explicit:
        budget = min(budget, max(MIN_THINKING_BUDGET, max_tokens // 2))
    if budget >= max_tokens:
        if max_tokens > MIN_THINKING_BUDGET:
            budget = max_tokens - 1
        else:
            max_tokens = budget + max_tokens
    return budget, max_tokens
