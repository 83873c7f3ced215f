"""Anthropic Messages API codec (`POST /v1/messages`), both directions.

Front door: decode what Claude Code / opencode / aider / Goose send, encode the
answer (JSON or SSE) exactly as api.anthropic.com would.
Upstream dialect: encode a canonical Request for api.anthropic.com, decode its
Message objects, SSE streams and error bodies.

Token convention (see canonical.py): Anthropic's `input_tokens` EXCLUDES cache
reads and writes, canonical `input_tokens` INCLUDES them. `_usage_in` and
`_usage_out` are the only places that convert.

Same-format traffic normally takes the passthrough path and never reaches this
module; when it does (a route that must rewrite the body), everything the
canonical model cannot hold is carried in `Request.extra` and restored here
only when `request.source_format == "anthropic_messages"`.
"""

from __future__ import annotations

import re
import uuid

import orjson

from .base import CodecDefaults, StreamDecoder, StreamEncoder
from .canonical import (
    Block,
    BlockDelta,
    BlockStart,
    BlockStop,
    Event,
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
    ServerToolBlock,
    StreamError,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)
from .errors import GatewayError, InvalidRequest, UnsupportedFeature, error_type_for_status, is_retryable_status
from .sequencer import BlockSequencer
from .sse import SSEParser

FORMAT = "anthropic_messages"

# Anthropic requires max_tokens; used when a client of another format sent none.
DEFAULT_MAX_TOKENS = 4096
# Room left for the visible answer when we must pick max_tokens around a thinking budget.
ANSWER_ROOM = 4096
MIN_THINKING_BUDGET = 1024  # Anthropic rejects smaller budgets
# OpenAI-style effort -> Anthropic thinking budget, for upstreams that only know budgets.
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576, "xhigh": 32768, "max": 32768}

# canonical error type -> (HTTP status, Anthropic error type)
_ERROR_OUT = {
    "invalid_request": (400, "invalid_request_error"),
    "unsupported": (400, "invalid_request_error"),
    "context_length": (400, "invalid_request_error"),
    "authentication": (401, "authentication_error"),
    "permission": (403, "permission_error"),
    "not_found": (404, "not_found_error"),
    "request_too_large": (413, "request_too_large"),
    "rate_limit": (429, "rate_limit_error"),
    "api_error": (500, "api_error"),
    "bad_gateway": (502, "api_error"),
    "overloaded": (529, "overloaded_error"),
    "timeout": (504, "timeout_error"),
}
# Anthropic error type -> canonical error type
_ERROR_IN = {
    "invalid_request_error": "invalid_request",
    "authentication_error": "authentication",
    "permission_error": "permission",
    "billing_error": "permission",
    "not_found_error": "not_found",
    "request_too_large": "request_too_large",
    "rate_limit_error": "rate_limit",
    "api_error": "api_error",
    "overloaded_error": "overloaded",
    "timeout_error": "timeout",
}
_CONTEXT_PHRASES = ("prompt is too long", "context window", "context length", "exceed context limit",
                    "maximum context", "too many tokens")

_STOP_IN = {"end_turn": "end_turn", "max_tokens": "max_tokens", "tool_use": "tool_use",
            "stop_sequence": "stop_sequence", "refusal": "refusal", "pause_turn": "pause_turn",
            # newer API versions; the canonical model has no such reason and the client
            # should react as to a length stop
            "model_context_window_exceeded": "max_tokens"}
# canonical "error" has no Anthropic equivalent (the stream's error event carries failures)
_STOP_OUT = {"error": "end_turn"}

_ID_OK = re.compile(r"[A-Za-z0-9_-]+")
_ID_BAD_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_TAGS = re.compile(rb"<[^>]*>")
_SPACES = re.compile(rb"\s+")

_REQUEST_KEYS = frozenset({"model", "messages", "system", "tools", "tool_choice", "max_tokens", "temperature",
                           "top_p", "stop_sequences", "stream", "thinking", "metadata", "output_config"})
_TOOL_KEYS = frozenset({"name", "description", "input_schema", "cache_control"})


# =========================================================================== usage


def _usage_in(u: dict | None) -> Usage:
    """Anthropic usage object -> canonical Usage (input made all-inclusive)."""
    if not u:
        return Usage()
    i = u.get("input_tokens") or 0
    cw = u.get("cache_creation_input_tokens") or 0
    cr = u.get("cache_read_input_tokens") or 0
    return Usage(input_tokens=i + cw + cr, output_tokens=u.get("output_tokens") or 0,
                 cache_read_tokens=cr, cache_write_tokens=cw)


def _usage_out(u: Usage | None) -> dict:
    """Canonical Usage -> Anthropic usage object (input excludes cache reads/writes)."""
    if u is None:
        return {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                "output_tokens": 0}
    cw, cr = u.cache_write_tokens, u.cache_read_tokens
    return {"input_tokens": max(0, u.input_tokens - cw - cr), "cache_creation_input_tokens": cw,
            "cache_read_input_tokens": cr, "output_tokens": u.output_tokens}


# =========================================================================== request decoding


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
        return ImageBlock(media_type=src.get("media_type"), data=src.get("data"),
                          cache_control=raw.get("cache_control"))
    if kind == "url":
        return ImageBlock(url=src.get("url"), cache_control=raw.get("cache_control"))
    raise InvalidRequest(f"{where}.source.type: image source type {kind!r} is not supported by the gateway "
                         "(use base64 or url)")


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
                    raise InvalidRequest(f"{sub_where}.type: block type {sub_kind!r} inside tool_result is not "
                                         "supported by the gateway (text and image are)")
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
    raise InvalidRequest(f"{where}.type: content block type {kind!r} is not supported by the gateway "
                         "when translating to another provider format")


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
                raise InvalidRequest(f"{where}.{j}.type: only text blocks are allowed in system, got {kind!r}")
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
    return ToolChoice(kind, name if kind == "tool" else None, bool(raw.get("disable_parallel_tool_use", False)))


# =========================================================================== request encoding


def _safe_id(ident: str) -> str:
    """Anthropic tool ids must match ^[a-zA-Z0-9_-]+$; other providers' ids may not
    (e.g. `functions.bash:0`). Same mapping for tool_use and tool_result keeps pairs."""
    if _ID_OK.fullmatch(ident):
        return ident
    return _ID_BAD_CHARS.sub("_", ident) or "toolu_empty"


def _encode_image(b: ImageBlock) -> dict:
    if b.data is not None:
        src = {"type": "base64", "media_type": b.media_type or "image/png", "data": b.data}
    else:
        url = b.url or ""
        if url.startswith("data:"):
            # OpenAI clients send inline images as data URLs; Anthropic wants base64 sources.
            head, _, data = url.partition(",")
            media_type = head[5:].split(";", 1)[0] or "image/png"
            src = {"type": "base64", "media_type": media_type, "data": data}
        else:
            src = {"type": "url", "url": url}
    out = {"type": "image", "source": src}
    if b.cache_control:
        out["cache_control"] = b.cache_control
    return out


def _encode_text(b: TextBlock) -> dict:
    out = {"type": "text", "text": b.text}
    if b.cache_control:
        out["cache_control"] = b.cache_control
    return out


def _server_result(raw: dict) -> ServerToolBlock:
    """web_search_tool_result (and other *_tool_result blocks of server tools)."""
    content = raw.get("content")
    name = raw["type"][:-len("_tool_result")]
    return ServerToolBlock(raw.get("tool_use_id") or "", name,
                           result=content if isinstance(content, list) else [content])


def _encode_block(b: Block) -> dict | None:
    """One canonical block as an Anthropic request/response content block; None = leave out."""
    kind = b.type
    if kind == "server_tool":
        if b.result is None:
            return {"type": "server_tool_use", "id": b.id, "name": b.name, "input": b.input}
        return {"type": f"{b.name}_tool_result", "tool_use_id": b.id, "content": b.result}
    if kind == "text":
        # Anthropic rejects empty text blocks ("text content blocks must be non-empty");
        # OpenAI clients send content "" next to tool calls.
        return _encode_text(b) if b.text else None
    if kind == "tool_use":
        out = {"type": "tool_use", "id": _safe_id(b.id), "name": b.name, "input": b.input}
        if b.cache_control:
            out["cache_control"] = b.cache_control
        return out
    if kind == "tool_result":
        out = {"type": "tool_result", "tool_use_id": _safe_id(b.tool_use_id)}
        content = b.content
        if len(content) == 1 and content[0].type == "text" and not content[0].cache_control:
            out["content"] = content[0].text  # the common (and most compact) shape
        elif content:
            out["content"] = [_encode_text(c) if c.type == "text" else _encode_image(c)
                              for c in content if c.type in ("text", "image") and (c.type != "text" or c.text)]
        if b.is_error:
            out["is_error"] = True
        if b.cache_control:
            out["cache_control"] = b.cache_control
        return out
    if kind == "thinking":
        # Anthropic verifies the signature of every thinking block it is sent back;
        # a block without one (reasoning text from another provider, or a client
        # that dropped it) would make the whole request fail with a 400. The model
        # does not need earlier turns' thinking, so unsigned blocks are left out.
        # OpenAI reasoning signatures ("<item id>|<encrypted>", see openai_responses)
        # are not Anthropic's either.
        if not b.signature or "|" in b.signature:
            return None
        return {"type": "thinking", "thinking": b.thinking, "signature": b.signature}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": b.data}
    if kind == "image":
        return _encode_image(b)
    return None


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


# =========================================================================== the codec


class AnthropicMessagesCodec(CodecDefaults):
    name = FORMAT
    stream_media_type = "text/event-stream"

    # ------------------------------------------------------------------ requests

    def decode_request(self, body: dict, *, require_max_tokens: bool = True) -> Request:
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
            raise InvalidRequest("tool_result block(s) found without a matching tool_use in an earlier "
                                 "assistant message: " + ", ".join(orphans[:5]))

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
                req.response_format = {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": fmt.get("schema") or {}}}
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

    def encode_request(self, request: Request) -> dict:
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
                        m["content"] = ([b for b in content if b["type"] == "tool_result"]
                                        + [b for b in content if b["type"] != "tool_result"])
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

    # ------------------------------------------------------------------ responses

    def decode_response(self, body: dict, *, model: str = "") -> Response:
        if not isinstance(body, dict):
            raise GatewayError("bad_gateway", "upstream returned a non-object Anthropic response", 502,
                               retryable=True)
        content: list[Block] = []
        for raw in body.get("content") or ():
            if not isinstance(raw, dict):
                continue
            kind = raw.get("type")
            if kind == "text":
                content.append(TextBlock(raw.get("text") or ""))
            elif kind == "tool_use":
                content.append(ToolUseBlock(raw.get("id") or "", raw.get("name") or "", raw.get("input") or {}))
            elif kind == "thinking":
                content.append(ThinkingBlock(raw.get("thinking") or "", raw.get("signature")))
            elif kind == "redacted_thinking":
                content.append(RedactedThinkingBlock(raw.get("data") or ""))
            elif kind == "server_tool_use":  # a tool Anthropic ran (web_search a route mapped)
                content.append(ServerToolBlock(raw.get("id") or "", raw.get("name") or "",
                                               raw.get("input") if isinstance(raw.get("input"), dict) else {}))
            elif isinstance(kind, str) and kind.endswith("_tool_result") and kind != "tool_result":
                content.append(_server_result(raw))
        stop = body.get("stop_reason")
        return Response(id=body.get("id") or "", model=body.get("model") or "", content=content,
                        stop_reason=_STOP_IN.get(stop, "end_turn") if stop is not None else None,
                        stop_sequence=body.get("stop_sequence"), usage=_usage_in(body.get("usage")))

    def encode_response(self, response: Response, request: Request) -> dict:
        content = []
        for b in response.content:
            if b.type == "thinking":
                # keep reasoning visible even without a signature (other providers)
                content.append({"type": "thinking", "thinking": b.thinking, "signature": b.signature or ""})
                continue
            enc = _encode_block(b)
            if enc is not None:
                content.append(enc)
        stop = response.stop_reason
        return {"id": _message_id(response.id), "type": "message", "role": "assistant", "model": request.model,
                "content": content, "stop_reason": _STOP_OUT.get(stop, stop) if stop is not None else None,
                "stop_sequence": response.stop_sequence, "usage": _usage_out(response.usage)}

    # ------------------------------------------------------------------ streams

    def stream_decoder(self, *, model: str = "") -> StreamDecoder:
        return AnthropicStreamDecoder()

    def stream_encoder(self, request: Request) -> StreamEncoder:
        return AnthropicStreamEncoder(request)

    # ------------------------------------------------------------------ errors

    def encode_error(self, error: GatewayError) -> tuple[int, dict]:
        status, kind = _ERROR_OUT.get(error.type, (None, None))
        if kind is None:  # a type this codec does not know: go by the status
            status = error.status or 500
            kind = _anthropic_type_for_status(status)
        return status, {"type": "error", "error": {"type": kind,
                                                   "message": _client_message(error.type, error.message)}}

    def decode_error(self, status: int, body: bytes) -> GatewayError:
        kind = message = None
        try:
            obj = orjson.loads(body) if body else None
        except (orjson.JSONDecodeError, TypeError):
            obj = None
        if isinstance(obj, dict):
            err = obj.get("error")
            if isinstance(err, dict):
                message = err.get("message") if isinstance(err.get("message"), str) else None
                kind = _ERROR_IN.get(err.get("type"))
            elif isinstance(err, str):  # some proxies: {"error": "..."}
                message = err
            elif isinstance(obj.get("message"), str):
                message = obj["message"]
        if message is None:
            message = f"upstream returned HTTP {status}" + (f": {_excerpt(body)}" if body else " with an empty body")
        if kind is None:
            kind = "bad_gateway" if status == 502 else error_type_for_status(status)
        if kind == "invalid_request" and any(p in message.lower() for p in _CONTEXT_PHRASES):
            kind = "context_length"
        out_status = status if 400 <= status < 600 else None
        return GatewayError(kind, message, out_status, retryable=is_retryable_status(status)
                            or kind in ("overloaded", "rate_limit", "timeout"))


def _anthropic_type_for_status(status: int) -> str:
    if status == 529 or status == 503:
        return "overloaded_error"
    if status >= 500:
        return "api_error"
    return {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
            413: "request_too_large", 429: "rate_limit_error"}.get(status, "invalid_request_error")


def _client_message(kind: str, message: str) -> str:
    # Claude Code (and Goose) start compaction on the phrase Anthropic uses; an
    # OpenAI-worded context error would otherwise surface as a hard failure.
    if kind == "context_length" and "prompt is too long" not in message.lower():
        return "prompt is too long: " + message
    return message


def _excerpt(body: bytes, limit: int = 200) -> str:
    text = _SPACES.sub(b" ", _TAGS.sub(b" ", body[:4096])).strip()
    return text[:limit].decode("utf-8", "replace")


def _message_id(ident: str | None) -> str:
    if ident and ident.startswith("msg_"):
        return ident
    if ident:
        return "msg_" + _ID_BAD_CHARS.sub("_", ident)
    return "msg_" + uuid.uuid4().hex[:24]


# =========================================================================== stream decoding


class AnthropicStreamDecoder(StreamDecoder):
    """Anthropic SSE bytes (any chunking) -> canonical events."""

    __slots__ = ("_sse", "_done", "_raw_usage", "_ignored", "_server")

    def __init__(self) -> None:
        self._sse = SSEParser()
        self._done = False
        # Anthropic-shaped usage as reported so far; message_delta values are cumulative
        self._raw_usage = {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                           "output_tokens": 0}
        self._ignored: set[int] = set()  # indices of block types the canonical model cannot carry
        self._server: dict[int, tuple[ServerToolBlock, list[str]]] = {}  # server tool calls being streamed

    def _usage(self, update) -> Usage:
        raw = self._raw_usage
        if isinstance(update, dict):
            for k in raw:
                v = update.get(k)
                if isinstance(v, int):
                    raw[k] = v
        return _usage_in(raw)

    def feed(self, chunk: bytes) -> list[Event]:
        if self._done:
            return []
        out: list[Event] = []
        for name, data in self._sse.feed(chunk):
            self._handle(name, data, out)
            if self._done:
                break
        return out

    def close(self) -> list[Event]:
        if self._done:
            return []
        self._done = True
        detail = " (in the middle of an event)" if self._sse.pending() else ""
        return [StreamError("bad_gateway", f"Anthropic upstream stream ended before message_stop{detail}", 502)]

    def _handle(self, name: str | None, data: bytes, out: list) -> None:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._done = True
            out.append(StreamError("bad_gateway", "Anthropic upstream sent an unreadable stream event: "
                                   + data[:200].decode("utf-8", "replace"), 502))
            return
        if not isinstance(obj, dict):
            return
        kind = obj.get("type") or name
        if kind == "content_block_delta":
            index = obj.get("index", 0)
            if index in self._ignored:
                return
            delta = obj.get("delta") or {}
            if index in self._server:  # a server tool's input: emitted whole at its stop
                if delta.get("type") == "input_json_delta":
                    self._server[index][1].append(delta.get("partial_json", ""))
                return
            dkind = delta.get("type")
            if dkind == "text_delta":
                out.append(BlockDelta(index, "text", delta.get("text", "")))
            elif dkind == "input_json_delta":
                out.append(BlockDelta(index, "json", delta.get("partial_json", "")))
            elif dkind == "thinking_delta":
                out.append(BlockDelta(index, "thinking", delta.get("thinking", "")))
            elif dkind == "signature_delta":
                out.append(BlockDelta(index, "signature", delta.get("signature", "")))
            # citations_delta and future delta types: nothing canonical to carry
        elif kind == "content_block_start":
            index = obj.get("index", 0)
            cb = obj.get("content_block") or {}
            ckind = cb.get("type")
            if ckind == "text":
                out.append(BlockStart(index, TextBlock("")))
                if cb.get("text"):
                    out.append(BlockDelta(index, "text", cb["text"]))
            elif ckind == "tool_use":
                out.append(BlockStart(index, ToolUseBlock(cb.get("id") or "", cb.get("name") or "", {})))
                if cb.get("input"):
                    out.append(BlockDelta(index, "json", orjson.dumps(cb["input"]).decode()))
            elif ckind == "thinking":
                out.append(BlockStart(index, ThinkingBlock("")))
                if cb.get("thinking"):
                    out.append(BlockDelta(index, "thinking", cb["thinking"]))
                if cb.get("signature"):
                    out.append(BlockDelta(index, "signature", cb["signature"]))
            elif ckind == "redacted_thinking":
                out.append(BlockStart(index, RedactedThinkingBlock(cb.get("data") or "")))
            elif ckind == "server_tool_use":
                initial = cb.get("input") if isinstance(cb.get("input"), dict) else {}
                self._server[index] = (ServerToolBlock(cb.get("id") or "", cb.get("name") or "", initial), [])
            elif isinstance(ckind, str) and ckind.endswith("_tool_result") and ckind != "tool_result":
                out.append(BlockStart(index, _server_result(cb)))
            else:
                self._ignored.add(index)
        elif kind == "content_block_stop":
            index = obj.get("index", 0)
            server = self._server.pop(index, None)
            if server is not None:
                block, parts = server
                try:
                    streamed = orjson.loads("".join(parts)) if "".join(parts).strip() else None
                except orjson.JSONDecodeError:
                    streamed = None
                if isinstance(streamed, dict):
                    block.input = streamed
                out.append(BlockStart(index, block))
                out.append(BlockStop(index))
            elif index not in self._ignored:
                out.append(BlockStop(index))
        elif kind == "message_start":
            msg = obj.get("message") or {}
            out.append(MessageStart(msg.get("id") or "", msg.get("model") or "", self._usage(msg.get("usage"))))
        elif kind == "message_delta":
            delta = obj.get("delta") or {}
            stop = delta.get("stop_reason")
            out.append(MessageDelta(_STOP_IN.get(stop, "end_turn") if stop is not None else None,
                                    delta.get("stop_sequence"), self._usage(obj.get("usage"))))
        elif kind == "message_stop":
            self._done = True
            out.append(MessageStop())
        elif kind == "ping":
            out.append(Ping())
        elif kind == "error":
            err = obj.get("error") or {}
            ctype = _ERROR_IN.get(err.get("type"), "api_error")
            message = err.get("message") or "Anthropic upstream reported an error mid-stream"
            if ctype == "invalid_request" and any(p in message.lower() for p in _CONTEXT_PHRASES):
                ctype = "context_length"
            self._done = True
            out.append(StreamError(ctype, message, _ERROR_OUT[ctype][0]))
        # unknown (future) event types are ignored, as Anthropic's versioning policy asks


# =========================================================================== stream encoding

_PING = b'event: ping\ndata: {"type": "ping"}\n\n'
_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_DELTA_HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_DELTA_KINDS = {
    "text": b',"delta":{"type":"text_delta","text":',
    "json": b',"delta":{"type":"input_json_delta","partial_json":',
    "thinking": b',"delta":{"type":"thinking_delta","thinking":',
    "signature": b',"delta":{"type":"signature_delta","signature":',
}
_DELTA_TAIL = b"}}\n\n"


def _event(name: str, obj: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


class AnthropicStreamEncoder(StreamEncoder):
    """Canonical events -> Anthropic SSE bytes, laid out like api.anthropic.com's.

    Tolerates streams from other formats: block indices are renumbered 0..n in
    start order (SDKs index the content array with them), missing usage becomes
    zeros, open blocks are closed before the message ends, and message_delta is
    held until MessageStop so it always carries a stop_reason and the final
    cumulative usage (OpenAI sends usage after finish_reason).
    """

    __slots__ = ("_model", "_started", "_done", "_usage", "_start_usage", "_index", "_open", "_next",
                 "_stop_reason", "_stop_sequence", "_saw_tool", "_blocks_in_order")

    def __init__(self, request: Request) -> None:
        self._model = request.model
        self._started = False
        self._done = False
        self._usage = Usage()
        self._start_usage: dict | None = None
        self._index: dict[int, bytes] = {}  # canonical index -> wire index (ascii bytes)
        self._open: set[int] = set()  # canonical indices of open blocks
        self._next = 0
        self._stop_reason: str | None = None
        self._stop_sequence: str | None = None
        self._saw_tool = False
        self._blocks_in_order = BlockSequencer()  # one block open at a time, like api.anthropic.com

    def encode(self, event: Event) -> bytes:
        events = self._blocks_in_order.push(event)
        if len(events) == 1:
            return self._encode(events[0])
        return b"".join(self._encode(ev) for ev in events)

    def _encode(self, event: Event) -> bytes:
        if self._done:
            return b""
        if isinstance(event, BlockDelta):
            wire = self._index.get(event.index)
            if wire is None or event.index not in self._open:
                return self._orphan_delta(event)
            return _DELTA_HEAD + wire + _DELTA_KINDS[event.kind] + orjson.dumps(event.value) + _DELTA_TAIL
        if isinstance(event, BlockStart):
            return self._block_start(event.index, event.block)
        if isinstance(event, BlockStop):
            return self._block_stop(event.index)
        if isinstance(event, MessageStart):
            return self._message_start(event)
        if isinstance(event, MessageDelta):
            out = self._close_blocks()
            if event.stop_reason is not None:
                self._stop_reason = event.stop_reason
            if event.stop_sequence is not None:
                self._stop_sequence = event.stop_sequence
            if event.usage is not None:
                self._merge_usage(event.usage)
            return out
        if isinstance(event, MessageStop):
            out = self._message_start(None) if not self._started else b""
            out += self._close_blocks()
            out += self._message_delta() + _STOP
            self._done = True
            return out
        if isinstance(event, Ping):
            # any event before message_start makes Anthropic SDKs raise
            return _PING if self._started else b""
        if isinstance(event, StreamError):
            self._done = True
            _, kind = _ERROR_OUT.get(event.type, (500, "api_error"))
            return _event("error", {"type": "error", "error": {"type": kind,
                                                               "message": _client_message(event.type, event.message)}})
        return b""

    # -- pieces

    def _merge_usage(self, update: Usage) -> None:
        u = self._usage
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            v = getattr(update, name)
            if v:
                setattr(u, name, v)

    def _message_start(self, event: MessageStart | None) -> bytes:
        if self._started:
            if event is not None:  # a late MessageStart (after a synthesized one): keep its usage
                self._merge_usage(event.usage)
            return b""
        self._started = True
        if event is not None:
            self._merge_usage(event.usage)
        usage = _usage_out(self._usage)
        self._start_usage = usage
        return _event("message_start", {"type": "message_start", "message": {
            "id": _message_id(event.id if event is not None else None), "type": "message", "role": "assistant",
            "model": self._model, "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}})

    def _block_start(self, index: int, block: Block) -> bytes:
        out = self._message_start(None) if not self._started else b""
        if index in self._index:
            return out  # duplicate start: ignore
        wire_no = self._next
        self._next += 1
        wire = str(wire_no).encode()
        self._index[index] = wire
        self._open.add(index)
        kind = block.type
        follow: list[tuple[str, str]] = []
        if kind == "text":
            cb = {"type": "text", "text": ""}
            if block.text:
                follow.append(("text", block.text))
        elif kind == "tool_use":
            self._saw_tool = True
            cb = {"type": "tool_use", "id": _safe_id(block.id) if block.id else "toolu_" + uuid.uuid4().hex[:24],
                  "name": block.name, "input": {}}
            if block.input:
                follow.append(("json", orjson.dumps(block.input).decode()))
        elif kind == "thinking":
            cb = {"type": "thinking", "thinking": "", "signature": ""}
            if block.thinking:
                follow.append(("thinking", block.thinking))
            if block.signature:
                follow.append(("signature", block.signature))
        elif kind == "redacted_thinking":
            cb = {"type": "redacted_thinking", "data": block.data}
        else:  # images / tool results never appear in an assistant stream
            cb = {"type": "text", "text": ""}
        out += b"event: content_block_start\ndata: " + orjson.dumps(
            {"type": "content_block_start", "index": wire_no, "content_block": cb}) + b"\n\n"
        for dkind, value in follow:
            out += _DELTA_HEAD + wire + _DELTA_KINDS[dkind] + orjson.dumps(value) + _DELTA_TAIL
        return out

    def _orphan_delta(self, event: BlockDelta) -> bytes:
        """A delta without an open block (sloppy upstream): open one for text/thinking."""
        if event.index in self._index or event.kind not in ("text", "thinking"):
            return b""
        block = TextBlock("") if event.kind == "text" else ThinkingBlock("")
        return self._block_start(event.index, block) + self._encode(event)

    def _block_stop(self, index: int) -> bytes:
        if index not in self._open:
            return b""
        self._open.discard(index)
        return (b'event: content_block_stop\ndata: {"type":"content_block_stop","index":' + self._index[index]
                + b"}\n\n")

    def _close_blocks(self) -> bytes:
        if not self._open:
            return b""
        return b"".join(self._block_stop(i) for i in sorted(self._open, key=lambda i: int(self._index[i])))

    def _message_delta(self) -> bytes:
        stop = self._stop_reason or ("tool_use" if self._saw_tool else "end_turn")
        usage = _usage_out(self._usage)
        start = self._start_usage or {}
        if (usage["input_tokens"] == start.get("input_tokens")
                and usage["cache_creation_input_tokens"] == start.get("cache_creation_input_tokens")
                and usage["cache_read_input_tokens"] == start.get("cache_read_input_tokens")):
            # what api.anthropic.com sends when input usage is already in message_start
            usage = {"output_tokens": usage["output_tokens"]}
        return _event("message_delta", {"type": "message_delta",
                                        "delta": {"stop_reason": _STOP_OUT.get(stop, stop),
                                                  "stop_sequence": self._stop_sequence},
                                        "usage": usage})


CODEC = AnthropicMessagesCodec()
