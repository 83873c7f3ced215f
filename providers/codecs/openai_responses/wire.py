"""OpenAI Responses API: wire constants and helpers shared by the parts of this format."""

from __future__ import annotations

import os
import re

from ..canonical import (
    Block,
    RedactedThinkingBlock,
    Request,
    ServerToolBlock,
    StreamError,
    ThinkingBlock,
    Tool,
    ToolChoice,
    Usage,
)
from ..errors import ERROR_TYPES, GatewayError, UnsupportedFeature
from ..shared import new_id as _new_id

NS_SEP = "__"


FOREIGN_SIG = "junction:sig:"


REDACTED = "junction:redacted:"


LAYOUT_KEY = "_responses_layout"


_RESERVED_TOOL_EXTRA = frozenset({"namespace", "namespace_description", "hosted"})


_TOOL_CHOICE_OUT = {"auto": "auto", "none": "none", "any": "required"}


def join_namespace(namespace: str, name: str) -> str:
    return namespace.rstrip("_") + NS_SEP + name.lstrip("_")


def reasoning_block(item_id: str | None, encrypted: str | None, text: str) -> Block:
    """Canonical block for a reasoning item (see module docstring for the signature scheme)."""
    if isinstance(encrypted, str):
        if encrypted.startswith(FOREIGN_SIG):
            return ThinkingBlock(text, signature=encrypted[len(FOREIGN_SIG) :] or None)
        if encrypted.startswith(REDACTED):
            return RedactedThinkingBlock(encrypted[len(REDACTED) :])
    else:
        encrypted = None
    if not isinstance(item_id, str):
        item_id = None
    sig = (item_id or "") + "|" + (encrypted or "") if (item_id or encrypted) else None
    return ThinkingBlock(text, signature=sig)


def split_signature(sig: str | None) -> tuple[str | None, str | None]:
    """(item id, encrypted_content for a Responses client) for a canonical signature."""
    if not sig:
        return None, None
    if "|" in sig:
        item_id, _, enc = sig.partition("|")
        return item_id or None, enc or None
    return None, FOREIGN_SIG + sig


def _summary_text(item: dict) -> str:
    parts = [p.get("text") or "" for p in item.get("summary") or () if isinstance(p, dict)]
    if not any(parts):
        parts = [p.get("text") or "" for p in item.get("content") or () if isinstance(p, dict)]
    return "\n\n".join(p for p in parts if p)


def _namespace_map(tools: list[Tool] | None) -> dict[str, tuple[str, str]]:
    """flat name -> (namespace, inner name) for the namespaced tools of a request."""
    out: dict[str, tuple[str, str]] = {}
    for t in tools or ():
        ns = t.extra.get("namespace") if t.extra else None
        if ns:
            inner = t.extra.get("namespace_tool_name") or t.name[len(ns.rstrip("_")) + len(NS_SEP) :]
            out[t.name] = (ns, inner)
    return out


def _encode_tools(tools: list[Tool], same_format: bool) -> list[dict]:
    out: list[dict] = []
    namespaces: dict[str, dict] = {}
    for t in tools:
        extra = t.extra or {}
        if isinstance(extra.get("server_tool"), dict):
            out.append(
                dict(extra["server_tool"])
            )  # a hosted tool the gateway mapped to the Responses API's own
            continue
        hosted = extra.get("hosted")
        if hosted is not None:
            if not same_format or not isinstance(hosted, dict):
                # another format's server-side tool: its dict means nothing to OpenAI
                raise UnsupportedFeature(
                    f"hosted tool '{t.name}' cannot be sent to an OpenAI Responses upstream"
                )
            out.append(hosted)
            continue
        fn: dict = {"type": "function"}
        ns = extra.get("namespace")
        fn["name"] = (extra.get("namespace_tool_name") or t.name) if ns else t.name
        if t.description is not None:
            fn["description"] = t.description
        fn["parameters"] = t.input_schema
        if same_format:
            for k, v in extra.items():
                if k not in _RESERVED_TOOL_EXTRA and k != "namespace_tool_name" and k not in fn:
                    fn[k] = v
        fn["strict"] = bool(extra.get("strict", False))
        if ns:
            group = namespaces.get(ns)
            if group is None:
                group = {"type": "namespace", "name": ns}
                if extra.get("namespace_description") is not None:
                    group["description"] = extra["namespace_description"]
                group["tools"] = []
                namespaces[ns] = group
                out.append(group)
            group["tools"].append(fn)
        else:
            out.append(fn)
    return out


def _encode_tool_choice(choice: ToolChoice, ns_map: dict) -> object:
    if choice.type == "tool" and choice.name:
        if choice.name in ns_map:
            ns, inner = ns_map[choice.name]
            return {"type": "function", "name": inner, "namespace": ns}
        return {"type": "function", "name": choice.name}
    return _TOOL_CHOICE_OUT.get(choice.type, "auto")


def usage_from(raw) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    inp = raw.get("input_tokens") or 0
    out = raw.get("output_tokens") or 0
    cached = (raw.get("input_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (raw.get("output_tokens_details") or {}).get("reasoning_tokens") or 0
    return Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cached, reasoning_tokens=reasoning)


def usage_to(usage: Usage | None) -> dict:
    u = usage or Usage()
    return {
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cache_read_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.input_tokens + u.output_tokens,
    }


def _stop_reason(status, incomplete, has_tool_calls: bool, refused: bool = False):
    if status == "incomplete":
        reason = (incomplete or {}).get("reason") if isinstance(incomplete, dict) else None
        if reason == "content_filter":
            return "refusal"
        return "max_tokens"
    if refused:
        return "refusal"
    return "tool_use" if has_tool_calls else "end_turn"


def _status_for(stop_reason) -> tuple[str, dict | None]:
    if stop_reason == "max_tokens":
        return "incomplete", {"reason": "max_output_tokens"}
    if stop_reason == "refusal":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


_CONTEXT_RE = re.compile(
    r"context[ _-]?(length|window)|maximum context|too many tokens|prompt is too long|"
    r"exceeds the (model'?s? )?(context|maximum)|input tokens exceed",
    re.I,
)


_CODE_TYPES = {
    "context_length_exceeded": "context_length",
    "rate_limit_exceeded": "rate_limit",
    "insufficient_quota": "rate_limit",
    "server_error": "api_error",
    "server_is_overloaded": "overloaded",
    "overloaded": "overloaded",
    "invalid_prompt": "invalid_request",
    "invalid_api_key": "authentication",
    "model_not_found": "not_found",
    "timeout": "timeout",
}


def _error_type(code, message: str, fallback: str) -> str:
    if isinstance(code, str) and code in _CODE_TYPES:
        return _CODE_TYPES[code]
    if _CONTEXT_RE.search(message or ""):
        return "context_length"
    return fallback


def stream_error_from(err, fallback_message: str) -> StreamError:
    code = message = None
    if isinstance(err, dict):
        code, message = err.get("code"), err.get("message")
    message = message if isinstance(message, str) and message else fallback_message
    kind = _error_type(code, message, "api_error")
    return StreamError(kind, message, ERROR_TYPES.get(kind, 500))


def client_response_id(ident: str | None) -> str:
    if ident and ident.startswith("resp_"):
        return ident
    return "resp_" + (ident or os.urandom(12).hex())


def _message_item(item_id: str, text: str, status: str) -> dict:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}],
        "role": "assistant",
    }


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str, ns_map: dict) -> dict:
    item = {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }
    if name in ns_map:
        item["namespace"], item["name"] = ns_map[name]
    return item


def web_search_item(block: ServerToolBlock) -> dict:
    """A provider-run web search (Anthropic's server tool a route mapped) as the Responses
    API's own `web_search_call` output item."""
    query = block.input.get("query")
    action = {"type": "search", "query": query} if isinstance(query, str) else {"type": "search"}
    return {
        "id": "ws_" + (block.id or _new_id(""))[-24:],
        "type": "web_search_call",
        "status": "completed",
        "action": action,
    }


def _reasoning_item(item_id: str, text: str, enc: str | None) -> dict:
    item = {
        "id": item_id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}] if text else [],
    }
    if enc:
        item["encrypted_content"] = enc
    return item


def _echo_tools(request: Request) -> list[dict]:
    """The client's tools as the response object echoes them (never raises)."""
    try:
        return _encode_tools(request.tools or [], True)
    except GatewayError:
        return []


def _instructions_echo(request: Request):
    layout = request.extra.get(LAYOUT_KEY) if request.extra else None
    if layout and layout[0][0] == "instructions" and request.system:
        return request.system[0].text
    return None


def response_object(
    request: Request,
    ident: str,
    created_at: int,
    status: str,
    output: list,
    usage: dict | None,
    incomplete: dict | None = None,
    error: dict | None = None,
    tools: list | None = None,
) -> dict:
    """The `response` object with the echo fields the real API returns."""
    extra = request.extra or {}
    tc = request.tool_choice
    ns_map = _namespace_map(request.tools)
    r = request.reasoning
    tier = extra.get("service_tier")
    fmt = _encode_format(request.response_format) if request.response_format else {"type": "text"}
    text = {"format": fmt, "verbosity": "medium"}
    if isinstance(extra.get("text"), dict) and extra["text"].get("verbosity"):
        text["verbosity"] = extra["text"]["verbosity"]
    return {
        "id": ident,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": bool(extra.get("background", False)),
        "error": error,
        "incomplete_details": incomplete,
        "instructions": _instructions_echo(request),
        "max_output_tokens": request.max_tokens,
        "max_tool_calls": extra.get("max_tool_calls"),
        "model": request.model,
        "output": output,
        "parallel_tool_calls": not tc.disable_parallel_tool_use if tc else True,
        "previous_response_id": extra.get("previous_response_id"),
        "prompt_cache_key": extra.get("prompt_cache_key"),
        "reasoning": {"effort": r.effort if r else None, "summary": r.summary if r else None},
        "safety_identifier": extra.get("safety_identifier"),
        "service_tier": tier if tier in ("default", "flex", "scale", "priority") else "default",
        "store": bool(extra.get("store", True)),
        "temperature": request.temperature if request.temperature is not None else 1.0,
        "text": text,
        "tool_choice": (extra.get("_tool_choice") or _encode_tool_choice(tc, ns_map)) if tc else "auto",
        "tools": tools if tools is not None else _echo_tools(request),
        "top_logprobs": extra.get("top_logprobs") or 0,
        "top_p": request.top_p if request.top_p is not None else 1.0,
        "truncation": extra.get("truncation") or "disabled",
        "usage": usage,
        "user": extra.get("user"),
        "metadata": request.metadata if isinstance(request.metadata, dict) else {},
    }


def _encode_format(rf: dict) -> dict:
    kind = rf.get("type")
    if kind == "json_schema":
        js = rf.get("json_schema") or {}
        fmt = {"type": "json_schema", "name": js.get("name") or "response", "schema": js.get("schema") or {}}
        if js.get("strict") is not None:
            fmt["strict"] = js["strict"]
        if js.get("description") is not None:
            fmt["description"] = js["description"]
        return fmt
    if kind == "json_object":
        return {"type": "json_object"}
    return {"type": "text"}
