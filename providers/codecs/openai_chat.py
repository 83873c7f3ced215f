"""OpenAI Chat Completions (`POST /v1/chat/completions`), both directions.

Front door for Goose, opencode, aider and every OpenAI-compatible client; upstream
dialect for OpenAI, Azure, OpenRouter, vLLM, llama.cpp, LM Studio, Ollama's /v1 and
LiteLLM. Pure: no Django, no I/O. JSON through orjson (this runs on every
translated request and on every stream chunk).

Conventions beyond the official API that are understood in both directions:
- assistant `reasoning_content` (DeepSeek, vLLM, LiteLLM) or `reasoning` (OpenRouter,
  newer vLLM) carries thinking text; LiteLLM's `thinking_blocks`
  (`[{type: "thinking", thinking, signature}]`, `{type: "redacted_thinking", data}`)
  carries Anthropic signatures so a thinking conversation survives a round trip;
- `cache_control` on content parts and tools (LiteLLM / OpenRouter prompt caching);
- `usage.prompt_tokens_details.cache_write_tokens` and `usage.cost` (OpenRouter).
"""

from __future__ import annotations

import os
import re
import time

import orjson

from .base import CodecDefaults, StreamDecoder, StreamEncoder
from .canonical import (
    Block,
    BlockDelta,
    BlockStart,
    BlockStop,
    ImageBlock,
    Message,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    Reasoning,
    RedactedThinkingBlock,
    Request,
    Response,
    StreamError,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
    merge_usage,
)
from .errors import ERROR_TYPES, GatewayError, InvalidRequest, UnsupportedFeature, error_type_for_status, \
    is_retryable_status
from .sse import SSEParser

FORMAT = "openai_chat"

# Top-level request fields this codec maps onto the canonical Request; everything
# else goes to Request.extra untouched.
_KNOWN_FIELDS = frozenset((
    "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "max_tokens", "max_completion_tokens",
    "temperature", "top_p", "stop", "stream", "stream_options", "reasoning_effort", "response_format", "metadata",
))

# Extras of *other* formats that change what the model sees or does and have no
# Chat Completions equivalent: dropping them silently would answer a different
# question, so they are refused. Other foreign extras (top_k, store, keep_alive,
# context_management, ...) are tuning hints and are dropped.
_FOREIGN_EXTRAS_REFUSED = {
    "previous_response_id": "server-side conversation state (Responses API) cannot be replayed to Chat Completions",
    "conversation": "server-side conversation state (Responses API) cannot be replayed to Chat Completions",
    "prompt": "stored prompt templates (Responses API) are not available in Chat Completions",
    "background": "background mode (Responses API) is not available in Chat Completions",
    "mcp_servers": "Anthropic's MCP connector has no Chat Completions equivalent",
    "container": "Anthropic code-execution containers have no Chat Completions equivalent",
    "guardrailConfig": "Bedrock guardrails cannot be enforced by a Chat Completions upstream",
    "promptVariables": "Bedrock prompt management variables have no Chat Completions equivalent",
}

_FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_STOP_TO_FINISH = {
    "end_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "stop_sequence": "stop",
    "refusal": "content_filter",
    "pause_turn": "stop",
    "error": "stop",
}

# canonical error type -> (OpenAI error.type, default error.code)
_ERROR_WIRE = {
    "invalid_request": ("invalid_request_error", None),
    "unsupported": ("invalid_request_error", None),
    "context_length": ("invalid_request_error", "context_length_exceeded"),
    "authentication": ("authentication_error", "invalid_api_key"),
    "permission": ("permission_error", None),
    "not_found": ("not_found_error", "model_not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit": ("rate_limit_error", "rate_limit_exceeded"),
    "timeout": ("timeout_error", "timeout"),
    # OpenAI itself names every 5xx "server_error" (see tests/fakes/openai.py).
    "api_error": ("server_error", None),
    "bad_gateway": ("server_error", "bad_gateway"),
    "overloaded": ("server_error", "overloaded"),
}
# upstream error.type (OpenAI and look-alikes) -> canonical type, when no HTTP status is known
_WIRE_ERROR_TYPES = {
    "invalid_request_error": "invalid_request",
    "authentication_error": "authentication",
    "permission_error": "permission",
    "not_found_error": "not_found",
    "rate_limit_error": "rate_limit",
    "requests": "rate_limit",
    "tokens": "rate_limit",
    "insufficient_quota": "rate_limit",
    "server_error": "api_error",
    "api_error": "api_error",
    "overloaded_error": "overloaded",
    "timeout_error": "timeout",
}
_CONTEXT_PHRASES = ("maximum context length", "context_length_exceeded", "too many tokens", "context window",
                    "context length", "exceed_context_size", "exceeds the available context size",
                    "prompt is too long")

_TAG_RE = re.compile(rb"<[^>]*>")
_RAW_ARGS = "_raw_arguments"


def _new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


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


def _dumps_str(value) -> str:
    return orjson.dumps(value).decode()


def _arguments_out(block: ToolUseBlock) -> str:
    raw = block.input.get(_RAW_ARGS) if len(block.input) == 1 else None
    return raw if isinstance(raw, str) else _dumps_str(block.input)


def _arguments_in_lenient(raw) -> dict:
    """Upstream tool-call arguments. A model can emit broken JSON; the response must
    still reach the client, so unparseable text is kept verbatim under
    `_raw_arguments` (re-encoded to OpenAI as the same string) and the client's tool
    validation tells the model what went wrong."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {_RAW_ARGS: raw}
    return value if isinstance(value, dict) else {_RAW_ARGS: raw}


def _number(v) -> int:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0


def decode_usage(u) -> Usage | None:
    """An OpenAI-style usage object (OpenRouter's cost, DeepSeek's cache hits included)
    as canonical usage; None when there is none."""
    if not isinstance(u, dict):
        return None
    prompt = u.get("prompt_tokens_details")
    completion = u.get("completion_tokens_details")
    prompt = prompt if isinstance(prompt, dict) else {}
    completion = completion if isinstance(completion, dict) else {}
    cost = u.get("cost")
    return Usage(
        input_tokens=_number(u.get("prompt_tokens")),
        output_tokens=_number(u.get("completion_tokens")),
        # DeepSeek reports cache hits as prompt_cache_hit_tokens
        cache_read_tokens=_number(prompt.get("cached_tokens")) or _number(u.get("prompt_cache_hit_tokens")),
        cache_write_tokens=_number(prompt.get("cache_write_tokens")),
        reasoning_tokens=_number(completion.get("reasoning_tokens")),
        cost=float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
    )


def _encode_usage(u: Usage | None) -> dict:
    u = u or Usage()
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens, "cache_write_tokens": u.cache_write_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def _stop_reason(finish, has_tools: bool) -> str:
    stop = _FINISH_TO_STOP.get(finish, "end_turn") if finish else "end_turn"
    # Some servers (older Ollama /v1, some llama.cpp builds) say "stop" next to tool
    # calls; an Anthropic client only runs tools when told tool_use.
    if has_tools and stop == "end_turn":
        return "tool_use"
    return stop


def _finish_reason(stop_reason, has_tools: bool) -> str:
    finish = _STOP_TO_FINISH.get(stop_reason, "stop") if stop_reason else "stop"
    # Agents (opencode's AI SDK, Goose) decide whether to run tools from this.
    if has_tools and finish == "stop":
        return "tool_calls"
    return finish


def _classify(status: int | None, message: str, code, wire_type) -> str:
    low = message.lower()
    if code == "context_length_exceeded" or any(p in low for p in _CONTEXT_PHRASES):
        return "context_length"
    if status and status >= 400:
        return error_type_for_status(status)
    if isinstance(wire_type, str) and wire_type in _WIRE_ERROR_TYPES:
        return _WIRE_ERROR_TYPES[wire_type]
    return "bad_gateway"


def _error_fields(obj) -> tuple[str | None, object, object, int | None]:
    """(message, type, code, status hint) from the error bodies OpenAI look-alikes send:
    OpenAI/LiteLLM/llama.cpp `{"error": {...}}`, vLLM `{"object": "error", "message"}`,
    `{"error": "text"}`, FastAPI `{"detail"}`, Gemini's compat layer `[{"error": {...}}]`,
    OpenRouter `{"error": {"code": 429, "metadata": {"raw", "provider_name"}}}`."""
    if isinstance(obj, list) and obj:
        obj = obj[0]
    if not isinstance(obj, dict):
        return None, None, None, None
    err = obj.get("error")
    if isinstance(err, str):
        return err, None, None, None
    if not isinstance(err, dict):
        if "message" in obj:
            err = obj
        elif "detail" in obj:
            detail = obj["detail"]
            return (detail if isinstance(detail, str) else _dumps_str(detail)), None, None, None
        else:
            return None, None, None, None
    message = err.get("message")
    if message is not None and not isinstance(message, str):
        message = _dumps_str(message)
    code = err.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else None
    meta = err.get("metadata")
    if isinstance(meta, dict) and meta.get("raw"):
        raw = meta["raw"] if isinstance(meta["raw"], str) else _dumps_str(meta["raw"])
        who = meta.get("provider_name")
        message = f"{message or 'error'} ({who + ': ' if isinstance(who, str) else ''}{raw[:300]})"
    return message, err.get("type"), code, status


def _excerpt(body: bytes, limit: int = 200) -> str:
    head = body[:4096]
    if b"<" in head:
        head = _TAG_RE.sub(b" ", head)
    text = " ".join(head.decode("utf-8", "replace").split())
    if not text:
        return "(empty body)"
    return text if len(text) <= limit else text[:limit] + "..."


def _thinking_out(thinking: list, message: dict) -> None:
    """reasoning_content for DeepSeek/vLLM-style peers; thinking_blocks (LiteLLM's
    convention) only when there is something reasoning_content cannot carry: a
    signature or redacted thinking."""
    text = "".join(b.thinking for b in thinking if isinstance(b, ThinkingBlock))
    if text:
        message["reasoning_content"] = text
    if any(isinstance(b, RedactedThinkingBlock) or b.signature for b in thinking):
        message["thinking_blocks"] = [
            {"type": "redacted_thinking", "data": b.data} if isinstance(b, RedactedThinkingBlock)
            else ({"type": "thinking", "thinking": b.thinking, "signature": b.signature} if b.signature
                  else {"type": "thinking", "thinking": b.thinking})
            for b in thinking
        ]


# --------------------------------------------------------------------------- request decoding


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
            return ImageBlock(media_type=header[:-7] or None, data=data, detail=detail,
                              cache_control=part.get("cache_control"))
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
                raise _bad(f"messages[{i}].tool_calls[{j}].function.arguments is not valid JSON ({exc}): "
                           f"{raw[:100]!r}") from None
            args = {}
        if not isinstance(args, dict):
            raise _bad(f"messages[{i}].tool_calls[{j}].function.arguments must encode a JSON object, "
                       f"got {raw[:100]!r}")
    elif isinstance(raw, dict):
        args = raw
    elif raw is None or raw == "":
        args = {}
    else:
        raise _bad(f"messages[{i}].tool_calls[{j}].function.arguments must be a JSON string")
    return ToolUseBlock(id=call_id, name=fn["name"], input=args)


def _thinking_in(msg: dict) -> list[Block]:
    blocks: list[Block] = []
    tbs = msg.get("thinking_blocks")
    if isinstance(tbs, list) and tbs:
        for tb in tbs:
            if not isinstance(tb, dict):
                continue
            if tb.get("type") == "redacted_thinking":
                blocks.append(RedactedThinkingBlock(tb.get("data") or ""))
            else:
                text = tb.get("thinking")
                blocks.append(ThinkingBlock(text if isinstance(text, str) else "", tb.get("signature") or None))
        return blocks
    text = msg.get("reasoning_content") or msg.get("reasoning")
    if isinstance(text, str) and text:
        blocks.append(ThinkingBlock(text))
    return blocks


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
    return Tool(name=fn["name"], description=description if isinstance(description, str) else None,
                input_schema=params, cache_control=tool.get("cache_control") or fn.get("cache_control"),
                extra=extra)


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
            raise _bad("tool_choice must be 'auto', 'none', 'required' or {type: 'function', function: {name}}")
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


# --------------------------------------------------------------------------- the codec


class OpenAIChatCodec(CodecDefaults):
    name = FORMAT

    def __init__(self, *, send_cache_control: bool = False, send_thinking: bool = True):
        # send_cache_control: emit cache_control markers even for requests that came
        # from another format (an adapter for OpenRouter/LiteLLM in front of Claude
        # turns it on). Same-format requests always keep the client's markers.
        # send_thinking: echo thinking history as reasoning_content/thinking_blocks;
        # an adapter for an upstream that rejects unknown message fields turns it off.
        self.send_cache_control = send_cache_control
        self.send_thinking = send_thinking

    # ------------------------------------------------------------------ requests

    def decode_request(self, body: dict, *, require_max_tokens: bool = True) -> Request:
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
                self._message_cache_control(msg, blocks)
                messages.append(Message("user", blocks))
                after_tool = False
            elif role == "assistant":
                messages.append(Message("assistant", self._assistant_in(msg, i)))
                after_tool = False
            elif role == "tool":
                call_id = msg.get("tool_call_id")
                if not isinstance(call_id, str) or not call_id:
                    raise _bad(f"messages[{i}].tool_call_id must be a non-empty string")
                result = ToolResultBlock(call_id, _decode_parts(msg.get("content"), i, images=True),
                                         cache_control=msg.get("cache_control"))
                # Anthropic (and Bedrock) need all results of one assistant turn in
                # one user message.
                if after_tool:
                    messages[-1].content.append(result)
                else:
                    messages.append(Message("user", [result]))
                after_tool = True
            elif role == "system" or role == "developer":
                blocks = _decode_parts(msg.get("content"), i, images=False)
                self._message_cache_control(msg, blocks)
                system.extend(blocks)  # type: ignore[arg-type]  (text only: images=False)
            elif role == "function":
                raise UnsupportedFeature(f"messages[{i}]: legacy 'function' messages are not supported; use tools")
            else:
                raise _bad(f"messages[{i}].role must be one of system, developer, user, assistant, tool; "
                           f"got {role!r}")

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

    @staticmethod
    def _message_cache_control(msg: dict, blocks: list[Block]) -> None:
        # LiteLLM also accepts cache_control on the message itself (string content).
        if "cache_control" not in msg:
            return
        cc = msg["cache_control"]
        if cc and blocks and getattr(blocks[-1], "cache_control", None) is None:
            blocks[-1].cache_control = cc  # type: ignore[union-attr]

    @staticmethod
    def _assistant_in(msg: dict, i: int) -> list[Block]:
        blocks = _thinking_in(msg)  # thinking first, as Anthropic requires
        content = msg.get("content")
        text = _decode_parts(content, i, images=False)
        if not text and isinstance(msg.get("refusal"), str) and msg["refusal"]:
            text = [TextBlock(msg["refusal"])]
        OpenAIChatCodec._message_cache_control(msg, text)
        blocks.extend(text)
        calls = msg.get("tool_calls")
        if calls is not None:
            if not isinstance(calls, list):
                raise _bad(f"messages[{i}].tool_calls must be an array")
            blocks.extend(_tool_use_in(c, i, j) for j, c in enumerate(calls))
        if msg.get("function_call") is not None:
            raise UnsupportedFeature(f"messages[{i}]: legacy 'function_call' is not supported; use tool_calls")
        return blocks

    def encode_request(self, request: Request) -> dict:
        same = request.source_format == FORMAT
        keep_cc = same or self.send_cache_control
        if not same:
            for key, why in _FOREIGN_EXTRAS_REFUSED.items():
                if request.extra.get(key):
                    raise UnsupportedFeature(f"'{key}' cannot be sent to an OpenAI Chat Completions upstream: {why}")

        body: dict = {"model": request.model, "messages": self._messages_out(request, keep_cc)}

        # OpenAI rejects `tools: []` ("[] is too short") and tool_choice /
        # parallel_tool_calls without tools; never add tools the client did not send.
        if request.tools:
            body["tools"] = [self._tool_out(t, same, keep_cc) for t in request.tools]
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
            body["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) \
                else {"include_usage": True}

        effort = self._effort_out(request, same)
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

    @staticmethod
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

    @staticmethod
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

    def _messages_out(self, request: Request, keep_cc: bool) -> list[dict]:
        out: list[dict] = []
        if request.system:
            # One leading system message; several system blocks are joined with a
            # blank line (a mid-conversation system message cannot be expressed in
            # canonical anyway). With cache markers, text parts keep them apart.
            if keep_cc and any(b.cache_control for b in request.system):
                out.append({"role": "system", "content": [self._part_out(b, True) for b in request.system]})
            else:
                out.append({"role": "system", "content": "\n\n".join(b.text for b in request.system)})
        for msg in request.messages:
            if msg.role == "assistant":
                out.append(self._assistant_out(msg, keep_cc))
            else:
                self._user_out(msg, out, keep_cc)
        return out

    @staticmethod
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

    def _content_out(self, blocks: list[Block], keep_cc: bool):
        """A lone text block becomes a plain string (what every server accepts);
        several blocks or images become an array of parts."""
        if len(blocks) == 1:
            b = blocks[0]
            if isinstance(b, TextBlock) and not (keep_cc and b.cache_control):
                return b.text
        return [self._part_out(b, keep_cc) for b in blocks]

    def _user_out(self, msg: Message, out: list[dict], keep_cc: bool) -> None:
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
                tool_msgs.append({"role": "tool", "tool_call_id": b.tool_use_id,
                                  "content": self._content_out(texts, keep_cc) if texts else ""})
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
            out.append({"role": "user", "content": self._content_out(parts, keep_cc)})
        elif not tool_msgs:
            out.append({"role": "user", "content": ""})

    def _assistant_out(self, msg: Message, keep_cc: bool) -> dict:
        texts: list[Block] = []
        calls: list[dict] = []
        thinking: list[Block] = []
        for b in msg.content:
            if isinstance(b, TextBlock):
                texts.append(b)
            elif isinstance(b, ToolUseBlock):
                calls.append({"id": b.id, "type": "function",
                              "function": {"name": b.name, "arguments": _arguments_out(b)}})
            elif isinstance(b, (ThinkingBlock, RedactedThinkingBlock)):
                thinking.append(b)
            else:
                raise UnsupportedFeature(f"a {b.type} block cannot appear in an assistant message for Chat Completions")
        out: dict = {"role": "assistant",
                     "content": self._content_out(texts, keep_cc) if texts else (None if calls else "")}
        if thinking and self.send_thinking:
            _thinking_out(thinking, out)
        if calls:
            out["tool_calls"] = calls
        return out

    # ------------------------------------------------------------------ responses

    def decode_response(self, body: dict, *, model: str = "") -> Response:
        if not isinstance(body, dict):
            raise GatewayError("bad_gateway", "upstream response is not a JSON object", 502, retryable=True)
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            if body.get("error") is not None:
                message, wire_type, code, status = _error_fields(body)
                message = message or "upstream error"
                kind = _classify(status, message, code, wire_type)
                raise GatewayError(kind, "upstream error: " + message, status or ERROR_TYPES.get(kind, 502),
                                   retryable=kind in ("rate_limit", "api_error", "bad_gateway", "overloaded",
                                                      "timeout"),
                                   code=code if isinstance(code, str) else None)
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
                blocks.append(ToolUseBlock(
                    id=call_id if isinstance(call_id, str) and call_id else _new_id("call_"),
                    name=fn.get("name") if isinstance(fn.get("name"), str) else "",
                    input=_arguments_in_lenient(fn.get("arguments"))))
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

    def usage_from_response(self, body: dict) -> Usage:
        return (decode_usage(body.get("usage")) if isinstance(body, dict) else None) or Usage()

    def encode_response(self, response: Response, request: Request) -> dict:
        texts: list[str] = []
        thinking: list[Block] = []
        calls: list[dict] = []
        for b in response.content:
            if isinstance(b, TextBlock):
                texts.append(b.text)
            elif isinstance(b, ToolUseBlock):
                calls.append({"id": b.id, "type": "function",
                              "function": {"name": b.name, "arguments": _arguments_out(b)}})
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
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": _finish_reason(response.stop_reason, bool(calls))}],
            "usage": _encode_usage(response.usage),
        }

    # ------------------------------------------------------------------ streams

    def stream_decoder(self, *, model: str = "") -> StreamDecoder:
        return OpenAIChatStreamDecoder()

    def stream_encoder(self, request: Request) -> StreamEncoder:
        return OpenAIChatStreamEncoder(request)

    # ------------------------------------------------------------------ errors

    def encode_error(self, error: GatewayError) -> tuple[int, dict]:
        wire_type, code = _ERROR_WIRE.get(error.type, ("server_error", None))
        return error.status, {"error": {"message": error.message, "type": wire_type, "param": None,
                                        "code": error.code or code}}

    def decode_error(self, status: int, body: bytes) -> GatewayError:
        message = wire_type = code = None
        try:
            message, wire_type, code, _ = _error_fields(orjson.loads(body)) if body else (None, None, None, None)
        except Exception:  # not JSON (an HTML page from a proxy, a truncated body ...)
            pass
        if not message:
            message = _excerpt(body or b"")
        kind = _classify(status, message, code, wire_type)
        if kind == "context_length":
            code = "context_length_exceeded"  # one code for clients, whatever the server called it
        # "upstream error (HTTP n)" tells the user the provider said it, not the gateway.
        return GatewayError(kind, f"upstream error (HTTP {status}): {message}", status,
                            retryable=is_retryable_status(status),
                            code=code if isinstance(code, str) else None)


def _stream_error_from(err) -> StreamError:
    if isinstance(err, dict):
        message, wire_type, code, status = _error_fields({"error": err})
    else:
        message, wire_type, code, status = (err if isinstance(err, str) else _dumps_str(err)), None, None, None
    message = message or "upstream error"
    kind = _classify(status, message, code, wire_type)
    return StreamError(kind, "upstream error: " + message, status or ERROR_TYPES.get(kind, 502))


# --------------------------------------------------------------------------- stream decoding


class _ToolCall:
    __slots__ = ("id", "name", "index", "pending")

    def __init__(self, id, name):
        self.id = id
        self.name = name
        self.index = -1  # canonical block index once started
        self.pending: list[str] = []  # arguments that came before the name


class OpenAIChatStreamDecoder(StreamDecoder):
    """chat.completion.chunk SSE -> canonical events.

    Blocks open as content arrives and close when a different block starts
    (canonical blocks are sequential). MessageDelta/MessageStop wait for `[DONE]`
    because the usage chunk comes after the finish_reason chunk.
    """

    def __init__(self) -> None:
        self._sse = SSEParser()
        self._ended = False
        self._closing = False
        self._started = False
        self._next = 0
        self._open = -1  # canonical index of the open block, -1 if none
        self._open_kind: str | None = None  # "text" | "thinking" | "tool"
        self._signed = False  # the open thinking block already got its signature
        self._tools: dict = {}
        self._last_tool = None
        self._finish: str | None = None
        self._usage: Usage | None = None

    def feed(self, chunk: bytes) -> list:
        if self._ended:
            return []
        out: list = []
        for _, data in self._sse.feed(chunk):
            self._handle(data, out)
            if self._ended:
                break
        return out

    def close(self) -> list:
        if self._ended:
            return []
        self._closing = True
        out = self.feed(b"\n\n")  # a last event without its blank line still counts
        if self._ended:
            return out
        if self._finish is not None:
            self._done(out)  # some servers omit [DONE] after the finish_reason
        else:
            self._ended = True
            out.append(StreamError("bad_gateway", "upstream stream ended early", 502))
        return out

    def _handle(self, data: bytes, out: list) -> None:
        if data[:1] == b"[" and data.strip() == b"[DONE]":
            self._done(out)
            return
        if not data.strip():
            return
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._ended = True
            if self._closing:
                out.append(StreamError("bad_gateway", "upstream stream ended early (in the middle of an event)", 502))
            else:
                out.append(StreamError("bad_gateway", "upstream sent invalid JSON in its stream: "
                                       + data[:120].decode("utf-8", "replace"), 502))
            return
        if not isinstance(obj, dict):
            return
        err = obj.get("error")
        if err:
            self._ended = True
            out.append(_stream_error_from(err))
            return
        if not self._started:
            self._started = True
            rid, model = obj.get("id"), obj.get("model")
            out.append(MessageStart(rid if isinstance(rid, str) and rid else _new_id("chatcmpl-"),
                                    model if isinstance(model, str) else ""))
        choices = obj.get("choices")
        if choices and isinstance(choices, list):
            for choice in choices:
                # n > 1 is not representable in canonical: only the first choice counts.
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta")
                if delta and isinstance(delta, dict):
                    self._delta(delta, out)
                finish = choice.get("finish_reason")
                if finish:
                    self._finish = finish
        usage = obj.get("usage")
        if usage:
            # cumulative where servers repeat it (vLLM continuous usage stats): last wins
            self._usage = decode_usage(usage)

    def _switch(self, kind: str, block: Block, out: list) -> int:
        if self._open >= 0:
            out.append(BlockStop(self._open))
        index = self._open = self._next
        self._next += 1
        self._open_kind = kind
        self._signed = False
        out.append(BlockStart(index, block))
        return index

    def _thinking_index(self, out: list) -> int:
        if self._open_kind == "thinking" and not self._signed:
            return self._open
        return self._switch("thinking", ThinkingBlock(""), out)

    def _delta(self, delta: dict, out: list) -> None:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            out.append(BlockDelta(self._thinking_index(out), "thinking", reasoning))
        blocks = delta.get("thinking_blocks")
        if blocks and isinstance(blocks, list):
            self._thinking_blocks(blocks, bool(reasoning), out)
        content = delta.get("content")
        if not content:
            content = delta.get("refusal")
        if content and isinstance(content, str):
            index = self._open if self._open_kind == "text" else self._switch("text", TextBlock(""), out)
            out.append(BlockDelta(index, "text", content))
        calls = delta.get("tool_calls")
        if calls and isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    self._tool_fragment(call, out)

    def _thinking_blocks(self, blocks: list, text_seen: bool, out: list) -> None:
        # LiteLLM sends each thinking piece twice (reasoning_content and
        # thinking_blocks[].thinking) and the signature in a thinking_blocks entry
        # with empty text.
        for tb in blocks:
            if not isinstance(tb, dict):
                continue
            if tb.get("type") == "redacted_thinking":
                index = self._switch("redacted", RedactedThinkingBlock(tb.get("data") or ""), out)
                out.append(BlockStop(index))
                self._open, self._open_kind = -1, None
                continue
            text = tb.get("thinking")
            if text and isinstance(text, str) and not text_seen:
                out.append(BlockDelta(self._thinking_index(out), "thinking", text))
            signature = tb.get("signature")
            if signature and isinstance(signature, str):
                out.append(BlockDelta(self._thinking_index(out), "signature", signature))
                self._signed = True

    def _tool_fragment(self, call: dict, out: list) -> None:
        key = call.get("index")
        call_id = call.get("id")
        if not isinstance(key, int):
            # Servers that omit `index`: a new id is a new call, otherwise the last one.
            if isinstance(call_id, str) and call_id and call_id not in self._tools:
                key = call_id
            else:
                key = self._last_tool if self._last_tool is not None else 0
        fn = call.get("function")
        fn = fn if isinstance(fn, dict) else {}
        name = fn.get("name")
        args = fn.get("arguments")
        if isinstance(args, dict):
            args = _dumps_str(args)
        state = self._tools.get(key)
        if state is None:
            state = self._tools[key] = _ToolCall(call_id if isinstance(call_id, str) and call_id else None,
                                                 name if isinstance(name, str) and name else None)
        else:
            if not state.id and isinstance(call_id, str) and call_id:
                state.id = call_id
            if not state.name and isinstance(name, str) and name:
                state.name = name
        self._last_tool = key
        if state.index < 0:
            if args and isinstance(args, str):
                state.pending.append(args)
            if state.name:
                self._start_tool(state, out)
        elif args and isinstance(args, str):
            # A fragment for a call that is no longer the open block (servers that
            # interleave parallel calls) still goes to its own index: never dropped.
            out.append(BlockDelta(state.index, "json", args))

    def _start_tool(self, state: _ToolCall, out: list) -> None:
        state.index = self._switch("tool", ToolUseBlock(state.id or _new_id("call_"), state.name or "", {}), out)
        if state.pending:
            out.append(BlockDelta(state.index, "json", "".join(state.pending)))
            state.pending = []

    def _done(self, out: list) -> None:
        self._ended = True
        if not self._started:
            out.append(StreamError("bad_gateway", "upstream stream ended before any chunk", 502))
            return
        for state in self._tools.values():
            if state.index < 0:  # a call whose name never came
                self._start_tool(state, out)
        if self._open >= 0:
            out.append(BlockStop(self._open))
            self._open = -1
        out.append(MessageDelta(_stop_reason(self._finish, bool(self._tools)), usage=self._usage))
        out.append(MessageStop())


# --------------------------------------------------------------------------- stream encoding

_DONE = b"data: [DONE]\n\n"
_FIRST_DELTA = b'{"role":"assistant","content":""}'


class OpenAIChatStreamEncoder(StreamEncoder):
    """Canonical events -> the byte layout of OpenAI's own stream (tests/fakes/openai.py).

    `data: [DONE]` is written at MessageStop (right after the finish_reason chunk
    and the usage chunk), so close() only matters for a stream that never
    finished: it then writes an error event rather than truncating silently.
    After a StreamError nothing more is written (no [DONE]).
    """

    def __init__(self, request: Request) -> None:
        self._model = orjson.dumps(request.model)
        self._created = str(int(time.time())).encode()
        self._include_usage = request.stream_include_usage
        self._open_tail = b',"logprobs":null,"finish_reason":null}]' + \
            (b',"usage":null}\n\n' if self._include_usage else b"}\n\n")
        self._head = b""  # b'data: {"id":...,"model":...,' once started
        self._choice_head = b""
        self._blocks: dict[int, object] = {}  # canonical index -> "text" | "thinking" | tool call number
        self._tools = 0
        self._usage = Usage()
        self._stop_reason = None
        self._finished = False  # finish_reason chunk written
        self._done = False  # [DONE] or an error written

    def _start(self, message_id: str) -> bytes:
        rid = message_id if message_id.startswith("chatcmpl-") else "chatcmpl-" + (message_id or os.urandom(12).hex())
        self._head = (b'data: {"id":' + orjson.dumps(rid) + b',"object":"chat.completion.chunk","created":'
                      + self._created + b',"model":' + self._model + b",")
        self._choice_head = self._head + b'"choices":[{"index":0,"delta":'
        return self._choice_head + _FIRST_DELTA + self._open_tail

    def _chunk(self, delta: bytes) -> bytes:
        return self._choice_head + delta + self._open_tail

    def encode(self, event) -> bytes:
        if self._done:
            return b""
        cls = type(event)
        prefix = b"" if self._head or cls is MessageStart or cls is StreamError or cls is Ping \
            else self._start("")
        if cls is BlockDelta:
            return prefix + self._delta(event)
        if cls is BlockStart:
            return prefix + self._block_start(event)
        if cls is BlockStop or cls is Ping:
            return prefix
        if cls is MessageStart:
            merge_usage(self._usage, event.usage)
            return b"" if self._head else self._start(event.id)
        if cls is MessageDelta:
            merge_usage(self._usage, event.usage)
            self._stop_reason = event.stop_reason
            return prefix + self._finish()
        if cls is MessageStop:
            return prefix + self._finish() + self._usage_chunk() + self._end()
        if cls is StreamError:
            return self._error(event.type, event.message)
        return prefix

    def close(self) -> bytes:
        if self._done:
            return b""
        return self._error("bad_gateway", "upstream stream ended before the response was complete")

    def _block_start(self, event: BlockStart) -> bytes:
        block = event.block
        if isinstance(block, ToolUseBlock):
            n = self._tools
            self._tools += 1
            self._blocks[event.index] = n
            # The first fragment carries index, id and name together and a string
            # `arguments` (Goose drops calls otherwise).
            call = {"index": n, "id": block.id, "type": "function",
                    "function": {"name": block.name, "arguments": _dumps_str(block.input) if block.input else ""}}
            return self._chunk(b'{"tool_calls":[' + orjson.dumps(call) + b"]}")
        if isinstance(block, ThinkingBlock):
            self._blocks[event.index] = "thinking"
            out = self._chunk(b'{"reasoning_content":' + orjson.dumps(block.thinking) + b"}") \
                if block.thinking else b""
            if block.signature:
                out += self._signature(block.signature)
            return out
        if isinstance(block, RedactedThinkingBlock):
            self._blocks[event.index] = "redacted"
            return self._chunk(b'{"thinking_blocks":[' + orjson.dumps(
                {"type": "redacted_thinking", "data": block.data}) + b"]}")
        self._blocks[event.index] = "text"
        if isinstance(block, TextBlock) and block.text:
            return self._chunk(b'{"content":' + orjson.dumps(block.text) + b"}")
        return b""

    def _signature(self, signature: str) -> bytes:
        # LiteLLM's streaming convention: the signature arrives as a thinking_blocks
        # entry with empty text; clients that do not know the field ignore it, and a
        # LiteLLM-style client can echo it back so Anthropic accepts the history.
        return self._chunk(b'{"thinking_blocks":[{"type":"thinking","thinking":"","signature":'
                           + orjson.dumps(signature) + b"}]}")

    def _delta(self, event: BlockDelta) -> bytes:
        value = event.value
        if not value:
            return b""
        kind = event.kind
        if kind == "text":
            return self._chunk(b'{"content":' + orjson.dumps(value) + b"}")
        if kind == "json":
            n = self._blocks.get(event.index)
            if not isinstance(n, int):
                return b""  # arguments for a call that never started: nothing to attach them to
            return self._chunk(b'{"tool_calls":[{"index":' + str(n).encode() + b',"function":{"arguments":'
                               + orjson.dumps(value) + b"}}]}")
        if kind == "thinking":
            return self._chunk(b'{"reasoning_content":' + orjson.dumps(value) + b"}")
        if kind == "signature":
            return self._signature(value)
        return b""

    def _finish(self) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        finish = _finish_reason(self._stop_reason, self._tools > 0).encode()
        return (self._choice_head + b'{},"logprobs":null,"finish_reason":"' + finish + b'"}]'
                + (b',"usage":null}\n\n' if self._include_usage else b"}\n\n"))

    def _usage_chunk(self) -> bytes:
        if not self._include_usage:
            return b""
        # Goose needs "choices": [] and the top-level model on this chunk.
        return self._head + b'"choices":[],"usage":' + orjson.dumps(_encode_usage(self._usage)) + b"}\n\n"

    def _end(self) -> bytes:
        self._done = True
        return _DONE

    def _error(self, kind: str, message: str) -> bytes:
        self._done = True
        wire_type, code = _ERROR_WIRE.get(kind, ("server_error", None))
        return b"data: " + orjson.dumps({"error": {"message": message, "type": wire_type, "code": code}}) + b"\n\n"


CODEC = OpenAIChatCodec()
