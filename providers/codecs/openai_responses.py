"""OpenAI Responses API codec (`POST /v1/responses`), both directions.

Pure translation, no I/O, no Django. Decisions that other code relies on:

Tools
    * `{"type": "function", name, description, parameters, strict}` -> `Tool`; every other key of
      the function dict (strict included) is kept in `Tool.extra`. Encoding always sends `strict`
      explicitly (`False` when unknown) because the Responses API defaults it to *true*, which
      would reject ordinary non-strict schemas coming from other formats.
    * `{"type": "namespace", "name": NS, "tools": [...]}` (Codex) is flattened: each nested
      function becomes `Tool(name="NS__name")` with `extra["namespace"] = NS` (and
      `extra["namespace_description"]`). The `__` join is Codex's own canonical flat name
      (`ToolName::canonical_flat_name`). Encoding for a Responses peer re-nests the tools into
      the namespace (at the position of its first member) and splits tool calls back into
      `{"name": inner, "namespace": NS}`; the mapping comes from the tool list, never from
      string splitting. Function calls that arrive with a `namespace` field get the joined name.
    * Hosted tools (web_search, file_search, computer_use_preview, code_interpreter, mcp,
      custom, ... and namespaces holding non-function tools) become
      `Tool(name=<name or type>, extra={"hosted": <original dict>})`. This codec passes them
      through verbatim when the client spoke Responses too, and raises UnsupportedFeature for a
      `hosted` tool of any other source format; codecs of other formats must check
      `Tool.extra.get("hosted")` and raise UnsupportedFeature.

Reasoning items <-> ThinkingBlock
    * thinking = summary texts joined with a blank line (reasoning_text content if no summary).
    * signature = "<item id>|<encrypted_content>" (either side may be empty). The `|` marks a
      signature made by an OpenAI Responses peer; Fernet/base64 payloads and item ids never
      contain `|`. Encoding for a Responses upstream sends only such reasoning items, with
      `encrypted_content` and *without* the id when the encrypted content is known (what
      Codex does; ids of unstored items are rejected under `store: false`), and with only the
      id otherwise. Foreign thinking (Anthropic signatures, unsigned thinking, redacted
      thinking) cannot be verified by OpenAI and is dropped on the way to a Responses upstream.
    * Towards a Responses *client*, a foreign signature is wrapped into encrypted_content as
      "junction:sig:<signature>" and redacted thinking as "junction:redacted:<data>", so a
      client that replays its items (Codex does, with include=reasoning.encrypted_content)
      round-trips Anthropic thinking losslessly.
    Other codecs: a ThinkingBlock signature containing `|` belongs to OpenAI, not to you.

System / developer
    `instructions` and input messages with role system/developer go to `Request.system` (one
    TextBlock per text part). Their layout (instructions vs. developer message, part counts,
    position in the conversation) and input items the canonical model cannot express
    (web_search_call, item_reference, custom_tool_call, compaction, ...) are remembered in
    `Request.extra["_responses_layout"]` so that encoding for a Responses upstream of the same
    client format restores them in place. Extra keys starting with "_" are private: never sent.
    Cross-format, the system blocks become one `instructions` string.

Messages
    Item boundaries are kept where the canonical model allows: each user message item is its
    own canonical message; consecutive function_call_output items share one user message;
    assistant message / reasoning / function_call items that follow each other share one
    assistant message (so consecutive assistant *message* items are merged, the only loss).

Other
    * `store` sent upstream is `False` unless the (same-format) client explicitly sent one: the
      gateway keeps conversations itself and resolves `previous_response_id` before decoding.
    * Responses has no stop sequences: `Request.stop` raises UnsupportedFeature on encode.
    * Extras (include, prompt_cache_key, client_metadata, store, truncation, user, service_tier,
      ...) are copied upstream only when `request.source_format == "openai_responses"`.
    * Output items the canonical model cannot express (web_search_call, ...) coming back from an
      upstream are not translated; same-format routes should use the gateway's passthrough.
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
    merge_usage,
)
from .errors import ERROR_TYPES, GatewayError, InvalidRequest, UnsupportedFeature, error_type_for_status, is_retryable_status
from .sequencer import BlockSequencer
from .sse import SSEParser

NAME = "openai_responses"
NS_SEP = "__"
FOREIGN_SIG = "junction:sig:"
REDACTED = "junction:redacted:"
LAYOUT_KEY = "_responses_layout"

_KNOWN_FIELDS = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens",
    "temperature", "top_p", "reasoning", "stream", "metadata",
})
_FUNCTION_KEYS = ("type", "name", "description", "parameters")
_RESERVED_TOOL_EXTRA = frozenset({"namespace", "namespace_description", "hosted"})
_TOOL_CHOICE_IN = {"auto": "auto", "none": "none", "required": "any"}
_TOOL_CHOICE_OUT = {"auto": "auto", "none": "none", "any": "required"}


def _new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def join_namespace(namespace: str, name: str) -> str:
    return namespace.rstrip("_") + NS_SEP + name.lstrip("_")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# --------------------------------------------------------------------------- reasoning signatures


def reasoning_block(item_id: str | None, encrypted: str | None, text: str) -> Block:
    """Canonical block for a reasoning item (see module docstring for the signature scheme)."""
    if isinstance(encrypted, str):
        if encrypted.startswith(FOREIGN_SIG):
            return ThinkingBlock(text, signature=encrypted[len(FOREIGN_SIG):] or None)
        if encrypted.startswith(REDACTED):
            return RedactedThinkingBlock(encrypted[len(REDACTED):])
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


# --------------------------------------------------------------------------- tools


def _namespace_map(tools: list[Tool] | None) -> dict[str, tuple[str, str]]:
    """flat name -> (namespace, inner name) for the namespaced tools of a request."""
    out: dict[str, tuple[str, str]] = {}
    for t in tools or ():
        ns = t.extra.get("namespace") if t.extra else None
        if ns:
            inner = t.extra.get("namespace_tool_name") or t.name[len(ns.rstrip("_")) + len(NS_SEP):]
            out[t.name] = (ns, inner)
    return out


def _decode_function_tool(raw: dict, where: str, namespace: str | None = None,
                          namespace_description: str | None = None) -> Tool:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name is required for function tools", code="missing_required_parameter")
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
            if (isinstance(nested, list) and nested
                    and all(isinstance(t, dict) and t.get("type") == "function" for t in nested)
                    and set(raw) <= {"type", "name", "description", "tools"}):
                for j, t in enumerate(nested):
                    tools.append(_decode_function_tool(t, f"{where}.tools[{j}]", ns, raw.get("description")))
            else:
                tools.append(Tool(name=ns, extra={"hosted": raw}))
        else:
            tools.append(Tool(name=raw.get("name") if isinstance(raw.get("name"), str) else kind,
                              extra={"hosted": raw}))
    return tools


def _encode_tools(tools: list[Tool], same_format: bool) -> list[dict]:
    out: list[dict] = []
    namespaces: dict[str, dict] = {}
    for t in tools:
        extra = t.extra or {}
        if isinstance(extra.get("server_tool"), dict):
            out.append(dict(extra["server_tool"]))  # a hosted tool the gateway mapped to the Responses API's own
            continue
        hosted = extra.get("hosted")
        if hosted is not None:
            if not same_format or not isinstance(hosted, dict):
                # another format's server-side tool: its dict means nothing to OpenAI
                raise UnsupportedFeature(f"hosted tool '{t.name}' cannot be sent to an OpenAI Responses upstream")
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


def _decode_tool_choice(raw, parallel) -> tuple[ToolChoice | None, object]:
    """(canonical choice, raw value to keep for a same-format upstream or None)."""
    disable = parallel is False
    if raw is None:
        return (ToolChoice("auto", disable_parallel_tool_use=True) if disable else None), None
    if isinstance(raw, str):
        if raw not in _TOOL_CHOICE_IN:
            raise InvalidRequest("'tool_choice' must be 'auto', 'none', 'required' or an object",
                                 code="invalid_value")
        return ToolChoice(_TOOL_CHOICE_IN[raw], disable_parallel_tool_use=disable), None
    if isinstance(raw, dict) and isinstance(raw.get("type"), str):
        if raw["type"] == "function":
            name = raw.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequest("'tool_choice.name' is required for function tool choice")
            if isinstance(raw.get("namespace"), str) and raw["namespace"]:
                return ToolChoice("tool", name=join_namespace(raw["namespace"], name),
                                  disable_parallel_tool_use=disable), raw
            return ToolChoice("tool", name=name, disable_parallel_tool_use=disable), None
        if raw["type"] == "allowed_tools":
            kind = "any" if raw.get("mode") == "required" else "auto"
            return ToolChoice(kind, disable_parallel_tool_use=disable), raw
        # hosted tool choice ({"type": "web_search_preview"}, mcp, custom...): force "a tool"
        return ToolChoice("any", disable_parallel_tool_use=disable), raw
    raise InvalidRequest("'tool_choice' must be a string or an object with a 'type'")


def _encode_tool_choice(choice: ToolChoice, ns_map: dict) -> object:
    if choice.type == "tool" and choice.name:
        if choice.name in ns_map:
            ns, inner = ns_map[choice.name]
            return {"type": "function", "name": inner, "namespace": ns}
        return {"type": "function", "name": choice.name}
    return _TOOL_CHOICE_OUT.get(choice.type, "auto")


# --------------------------------------------------------------------------- content


def _decode_image(part: dict, where: str) -> ImageBlock:
    url = part.get("image_url")
    if isinstance(url, dict):
        url = url.get("url")
    detail = part.get("detail")
    if not isinstance(url, str) or not url:
        if part.get("file_id"):
            raise UnsupportedFeature(f"{where}: input_image with file_id is not supported; send image_url "
                                     "(https or data: URL) instead")
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
        raise InvalidRequest(f"{where}.arguments is not valid JSON", code="invalid_function_arguments") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}.arguments must encode a JSON object")
    return value


def _lenient_arguments(args) -> dict:
    if isinstance(args, dict):
        return args
    try:
        value = orjson.loads(args) if isinstance(args, str) and args else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


# --------------------------------------------------------------------------- usage / stop


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
    return {"input_tokens": u.input_tokens,
            "input_tokens_details": {"cached_tokens": u.cache_read_tokens},
            "output_tokens": u.output_tokens,
            "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
            "total_tokens": u.input_tokens + u.output_tokens}


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


# --------------------------------------------------------------------------- errors

_CONTEXT_RE = re.compile(r"context[ _-]?(length|window)|maximum context|too many tokens|prompt is too long|"
                         r"exceeds the (model'?s? )?(context|maximum)|input tokens exceed", re.I)
_RETRY_RE = re.compile(r"try again in\s*(\d+(?:\.\d+)?)\s*(ms|s|seconds?)\b", re.I)

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
_OUT_TYPES = {
    "invalid_request": ("invalid_request_error", None),
    "unsupported": ("invalid_request_error", "unsupported_feature"),
    "context_length": ("invalid_request_error", "context_length_exceeded"),
    "authentication": ("authentication_error", "invalid_api_key"),
    "permission": ("permission_error", None),
    "not_found": ("not_found_error", "model_not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit": ("rate_limit_error", "rate_limit_exceeded"),
    "api_error": ("server_error", "server_error"),
    "bad_gateway": ("server_error", "bad_gateway"),
    "overloaded": ("server_error", "server_is_overloaded"),
    "timeout": ("server_error", "timeout"),
}
# response.failed error codes (Codex keys context-window handling on context_length_exceeded)
_FAILED_CODES = {
    "context_length": "context_length_exceeded",
    "rate_limit": "rate_limit_exceeded",
    "invalid_request": "invalid_prompt",
    "unsupported": "invalid_prompt",
}


def _retry_after(message: str) -> float | None:
    m = _RETRY_RE.search(message or "")
    if not m:
        return None
    value = float(m.group(1))
    return value / 1000 if m.group(2).lower() == "ms" else value


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


def error_payload(error: GatewayError) -> dict:
    type_, code = _OUT_TYPES.get(error.type, ("server_error", None))
    return {"message": error.message, "type": type_, "param": getattr(error, "param", None),
            "code": error.code or code}


# --------------------------------------------------------------------------- the codec


class OpenAIResponsesCodec(CodecDefaults):
    name = NAME

    # ------------------------------------------------------------------ requests
    def decode_request(self, body: dict, *, require_max_tokens: bool = True) -> Request:
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

        messages = self._decode_input(body.get("input"), system, layout)

        req = Request(model=model, messages=messages, system=system, source_format=NAME)
        extra = {k: v for k, v in body.items() if k not in _KNOWN_FIELDS}
        if "text" in extra:
            req.response_format = self._decode_text(extra["text"])
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

    @staticmethod
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

    def _decode_input(self, raw, system: list[TextBlock], layout: list) -> list[Message]:
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
                    raise InvalidRequest(f"{where}.role must be one of user, assistant, system, developer",
                                         code="invalid_value")
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
                if (mergeable and last is not None and last.role == "user" and last.content
                        and all(isinstance(b, ToolResultBlock) for b in last.content)):
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

    def encode_request(self, request: Request) -> dict:
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
                    parts = [{"type": "input_text", "text": b.text} for b in request.system[pos_sys:pos_sys + e[2]]]
                    pos_sys += e[2]
                    inserts.setdefault(e[3], []).append({"type": "message", "role": e[1], "content": parts})
            else:
                inserts.setdefault(e[2], []).append(e[1])

        items: list[dict] = []
        for idx, msg in enumerate(request.messages):
            if idx in inserts:
                items.extend(inserts.pop(idx))
            self._encode_message(msg, items, ns_map)
        for pos in sorted(inserts):  # positions past the last message (or the list was shortened)
            items.extend(inserts[pos])
        body["input"] = items

        if request.tools is not None:
            body["tools"] = _encode_tools(request.tools, same)
        if request.tool_choice is not None:
            raw_choice = extra.get("_tool_choice")
            body["tool_choice"] = raw_choice if raw_choice is not None else \
                _encode_tool_choice(request.tool_choice, ns_map)
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
            text["format"] = self._encode_format(request.response_format)
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

    @staticmethod
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

    @staticmethod
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
                    items.append({"type": "function_call_output", "call_id": b.tool_use_id,
                                  "output": _tool_output(b.content)})
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
                item = {"type": "function_call", "call_id": b.id, "name": b.name,
                        "arguments": orjson.dumps(b.input).decode()}
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

    # ------------------------------------------------------------------ responses
    def decode_response(self, body: dict, *, model: str = "") -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("output"), list):
            raise GatewayError("bad_gateway", "upstream returned a malformed Responses API body", 502,
                               retryable=True)
        status = body.get("status")
        if status == "failed":
            err = stream_error_from(body.get("error"), "upstream response failed")
            raise GatewayError(err.type, err.message, err.status, retryable=err.type not in (
                "context_length", "invalid_request"))
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
                content.append(ToolUseBlock(id=item.get("call_id") or item.get("id") or _new_id("call_"),
                                            name=name, input=_lenient_arguments(item.get("arguments"))))
            elif kind == "reasoning":
                content.append(reasoning_block(item.get("id"), item.get("encrypted_content"), _summary_text(item)))
        return Response(id=body.get("id") or _new_id("resp_"), model=body.get("model") or "",
                        content=content,
                        stop_reason=_stop_reason(status, body.get("incomplete_details"), has_calls, refused),
                        usage=usage_from(body.get("usage")))

    def encode_response(self, response: Response, request: Request) -> dict:
        ns_map = _namespace_map(request.tools)
        output: list[dict] = []
        for b in response.content:
            if isinstance(b, TextBlock):
                output.append(_message_item(_new_id("msg_"), b.text, "completed"))
            elif isinstance(b, ToolUseBlock):
                output.append(_call_item(_new_id("fc_"), b.id, b.name, orjson.dumps(b.input).decode(),
                                         "completed", ns_map))
            elif isinstance(b, ThinkingBlock):
                item_id, enc = split_signature(b.signature)
                output.append(_reasoning_item(item_id or _new_id("rs_"), b.thinking, enc))
            elif isinstance(b, RedactedThinkingBlock):
                output.append(_reasoning_item(_new_id("rs_"), "", REDACTED + b.data))
            elif isinstance(b, ServerToolBlock) and b.result is None and b.name == "web_search":
                output.append(web_search_item(b))
            # a server tool's result has no Responses item: the model's text carries it
        status, incomplete = _status_for(response.stop_reason)
        return response_object(request, client_response_id(response.id), int(time.time()), status, output,
                               usage_to(response.usage), incomplete)

    # ------------------------------------------------------------------ streams
    def stream_decoder(self, *, model: str = "") -> StreamDecoder:
        return ResponsesStreamDecoder()

    def stream_encoder(self, request: Request) -> StreamEncoder:
        return ResponsesStreamEncoder(request)

    # ------------------------------------------------------------------ errors
    def encode_error(self, error: GatewayError) -> tuple[int, dict]:
        return error.status, {"error": error_payload(error)}

    def decode_error(self, status: int, body: bytes) -> GatewayError:
        message = code = None
        try:
            data = orjson.loads(body) if body else None
        except (orjson.JSONDecodeError, TypeError):
            data = None
        if isinstance(data, dict):
            err = data.get("error", data)
            if isinstance(err, dict):
                message, code = err.get("message"), err.get("code")
                if not isinstance(message, str):
                    message = data.get("detail") if isinstance(data.get("detail"), str) else None
            elif isinstance(err, str):
                message = err
        if not message:
            text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body or "")
            text = re.sub(r"<[^>]+>", " ", text)
            text = " ".join(text.split())[:300]
            message = f"upstream returned HTTP {status}" + (f": {text}" if text else "")
        kind = _error_type(code, message, error_type_for_status(status))
        if kind == "context_length" and status not in (400, 413):
            kind = error_type_for_status(status)
        retryable = is_retryable_status(status) and kind != "context_length"
        return GatewayError(kind, message, status if status >= 400 else None, retryable=retryable,
                            retry_after=_retry_after(message) if retryable else None,
                            code=code if isinstance(code, str) else None)


# --------------------------------------------------------------------------- response objects


def client_response_id(ident: str | None) -> str:
    if ident and ident.startswith("resp_"):
        return ident
    return "resp_" + (ident or os.urandom(12).hex())


def _message_item(item_id: str, text: str, status: str) -> dict:
    return {"id": item_id, "type": "message", "status": status,
            "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}],
            "role": "assistant"}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str, ns_map: dict) -> dict:
    item = {"id": item_id, "type": "function_call", "status": status, "arguments": arguments,
            "call_id": call_id, "name": name}
    if name in ns_map:
        item["namespace"], item["name"] = ns_map[name]
    return item


def web_search_item(block: ServerToolBlock) -> dict:
    """A provider-run web search (Anthropic's server tool a route mapped) as the Responses
    API's own `web_search_call` output item."""
    query = block.input.get("query")
    action = {"type": "search", "query": query} if isinstance(query, str) else {"type": "search"}
    return {"id": "ws_" + (block.id or _new_id(""))[-24:], "type": "web_search_call", "status": "completed",
            "action": action}


def _reasoning_item(item_id: str, text: str, enc: str | None) -> dict:
    item = {"id": item_id, "type": "reasoning",
            "summary": [{"type": "summary_text", "text": text}] if text else []}
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


def response_object(request: Request, ident: str, created_at: int, status: str, output: list,
                    usage: dict | None, incomplete: dict | None = None, error: dict | None = None,
                    tools: list | None = None) -> dict:
    """The `response` object with the echo fields the real API returns."""
    extra = request.extra or {}
    tc = request.tool_choice
    ns_map = _namespace_map(request.tools)
    r = request.reasoning
    tier = extra.get("service_tier")
    fmt = OpenAIResponsesCodec._encode_format(request.response_format) if request.response_format else {"type": "text"}
    text = {"format": fmt, "verbosity": "medium"}
    if isinstance(extra.get("text"), dict) and extra["text"].get("verbosity"):
        text["verbosity"] = extra["text"]["verbosity"]
    return {
        "id": ident, "object": "response", "created_at": created_at, "status": status,
        "background": bool(extra.get("background", False)), "error": error,
        "incomplete_details": incomplete, "instructions": _instructions_echo(request),
        "max_output_tokens": request.max_tokens, "max_tool_calls": extra.get("max_tool_calls"),
        "model": request.model, "output": output,
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
        "usage": usage, "user": extra.get("user"),
        "metadata": request.metadata if isinstance(request.metadata, dict) else {},
    }


# --------------------------------------------------------------------------- stream decoder


class ResponsesStreamDecoder(StreamDecoder):
    """Responses SSE (`event: response.X` + `data: {...}`) -> canonical events."""

    def __init__(self) -> None:
        self._sse = SSEParser()
        self._started = False
        self._done = False
        self._next_index = 0
        self._blocks: dict = {}  # key -> [canonical index, kind, saw_delta, text]
        self._items: dict[int, str] = {}  # output_index -> item type
        self._item_ids: dict[str, int] = {}  # item id -> output_index
        self._has_calls = False
        self._refused = False
        self._text_items: set[int] = set()  # output indexes of messages that produced text blocks
        self._text_done: set = set()  # text parts already closed

    # -- helpers
    def _start(self, out: list, data: dict | None = None) -> None:
        if self._started:
            return
        self._started = True
        resp = (data or {}).get("response") or {}
        out.append(MessageStart(id=resp.get("id") or _new_id("resp_"), model=resp.get("model") or "",
                                usage=usage_from(resp.get("usage"))))

    def _open(self, out: list, key, block: Block, kind: str) -> list:
        state = [self._next_index, kind, False, ""]
        self._next_index += 1
        self._blocks[key] = state
        out.append(BlockStart(state[0], block))
        return state

    def _close(self, out: list, key) -> None:
        state = self._blocks.pop(key, None)
        if state is not None:
            out.append(BlockStop(state[0]))

    def _output_index(self, data: dict) -> int:
        oi = data.get("output_index")
        if isinstance(oi, int):
            return oi
        return self._item_ids.get(data.get("item_id"), -1)

    def _text_delta(self, out: list, data: dict, delta: str) -> None:
        oi = self._output_index(data)
        key = ("text", oi, data.get("content_index") or 0)
        state = self._blocks.get(key)
        if state is None:
            if key in self._text_done:
                return  # a late done/part event for a part already closed
            state = self._open(out, key, TextBlock(""), "text")
            self._text_items.add(oi)
        if delta:
            state[2] = True
            out.append(BlockDelta(state[0], "text", delta))

    def _finish(self, out: list, resp: dict) -> None:
        for key in list(self._blocks):
            self._close(out, key)
        output = resp.get("output")
        has_calls = self._has_calls or any(
            isinstance(i, dict) and i.get("type") == "function_call" for i in output or ())
        stop = _stop_reason(resp.get("status"), resp.get("incomplete_details"), has_calls, self._refused)
        out.append(MessageDelta(stop_reason=stop, usage=usage_from(resp.get("usage"))))
        out.append(MessageStop())
        self._done = True

    # -- API
    def feed(self, chunk: bytes) -> list[Event]:
        out: list[Event] = []
        if self._done:
            return out
        for event, raw in self._sse.feed(chunk):
            if self._done:
                break
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # keep-alives and junk are skipped; close() reports a missing end
            if not isinstance(data, dict):
                continue
            kind = data.get("type") or event
            if isinstance(kind, str):
                self._handle(kind, data, out)
        return out

    def _handle(self, kind: str, data: dict, out: list) -> None:
        if kind == "response.created" or kind == "response.in_progress" or kind == "response.queued":
            self._start(out, data)
            return
        if kind == "error":
            err = data.get("error") if isinstance(data.get("error"), dict) else data
            self._start(out)
            out.append(stream_error_from(err, "upstream stream error"))
            self._done = True
            return
        if kind == "response.failed":
            resp = data.get("response") or {}
            self._start(out, data)
            out.append(stream_error_from(resp.get("error"), "upstream response failed"))
            self._done = True
            return
        if not kind.startswith("response."):
            return
        self._start(out)
        if kind in ("response.completed", "response.incomplete"):
            self._finish(out, data.get("response") or {})
        elif kind == "response.output_text.delta":
            self._text_delta(out, data, data.get("delta") or "")
        elif kind == "response.refusal.delta":
            self._refused = True
            self._text_delta(out, data, data.get("delta") or "")
        elif kind in ("response.output_text.done", "response.refusal.done", "response.content_part.done"):
            # servers that skip the deltas still send the full text here
            key = ("text", self._output_index(data), data.get("content_index") or 0)
            state = self._blocks.get(key)
            if state is None or not state[2]:
                text = data.get("text")
                if text is None:
                    part = data.get("part") or {}
                    text = part.get("text") or part.get("refusal")
                if text:
                    self._text_delta(out, data, text)
            if kind == "response.content_part.done":
                self._close(out, key)
                self._text_done.add(key)
        elif kind == "response.output_item.added":
            self._item_added(data, out)
        elif kind == "response.output_item.done":
            self._item_done(data, out)
        elif kind == "response.function_call_arguments.delta":
            state = self._blocks.get(("item", self._output_index(data)))
            if state is not None and data.get("delta"):
                state[2] = True
                out.append(BlockDelta(state[0], "json", data["delta"]))
        elif kind == "response.function_call_arguments.done":
            state = self._blocks.get(("item", self._output_index(data)))
            if state is not None and not state[2] and data.get("arguments"):
                state[2] = True
                out.append(BlockDelta(state[0], "json", data["arguments"]))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            state = self._blocks.get(("item", self._output_index(data)))
            if state is not None and state[1] == "reasoning" and data.get("delta"):
                self._thinking(out, state, data["delta"])
        elif kind in ("response.reasoning_summary_text.done", "response.reasoning_text.done"):
            state = self._blocks.get(("item", self._output_index(data)))
            if state is not None and state[1] == "reasoning" and not state[2] and data.get("text"):
                self._thinking(out, state, data["text"])
        elif kind == "response.reasoning_summary_part.added":
            state = self._blocks.get(("item", self._output_index(data)))
            if state is not None and state[1] == "reasoning" and state[3]:
                state[2] = False  # a new part: its text has not been seen yet
                self._thinking(out, state, "\n\n", sep=True)

    def _thinking(self, out: list, state: list, text: str, sep: bool = False) -> None:
        if not sep:
            state[2] = True
        state[3] += text
        out.append(BlockDelta(state[0], "thinking", text))

    def _item_added(self, data: dict, out: list) -> None:
        item = data.get("item") or {}
        oi = data.get("output_index")
        if not isinstance(oi, int):
            oi = len(self._items)
        kind = item.get("type")
        self._items[oi] = kind
        if isinstance(item.get("id"), str):
            self._item_ids[item["id"]] = oi
        if kind == "function_call":
            self._has_calls = True
            name = item.get("name") or ""
            if item.get("namespace"):
                name = join_namespace(item["namespace"], name)
            state = self._open(out, ("item", oi), ToolUseBlock(id=item.get("call_id") or item.get("id") or
                                                               _new_id("call_"), name=name, input={}), "call")
            if item.get("arguments"):
                state[2] = True
                out.append(BlockDelta(state[0], "json", item["arguments"]))
        elif kind == "reasoning":
            self._open(out, ("item", oi), ThinkingBlock(""), "reasoning")

    def _item_done(self, data: dict, out: list) -> None:
        item = data.get("item") or {}
        oi = data.get("output_index")
        if not isinstance(oi, int):
            oi = self._item_ids.get(item.get("id"), -1)
        kind = item.get("type") or self._items.get(oi)
        if kind == "message":
            keys = [k for k in self._blocks if k[0] == "text" and k[1] == oi]
            if oi not in self._text_items:  # a message that was never streamed part by part
                for ci, part in enumerate(item.get("content") or ()):
                    if isinstance(part, dict) and (part.get("text") or part.get("refusal")):
                        if part.get("type") == "refusal":
                            self._refused = True
                        self._text_delta(out, {"output_index": oi, "content_index": ci},
                                         part.get("text") or part.get("refusal"))
                        self._close(out, ("text", oi, ci))
            for k in keys:
                self._close(out, k)
            return
        key = ("item", oi)
        state = self._blocks.get(key)
        if kind == "function_call":
            if state is None:  # done without added (emits the arguments itself)
                self._item_added({"item": item, "output_index": oi}, out)
            elif not state[2] and item.get("arguments"):
                out.append(BlockDelta(state[0], "json", item["arguments"]))
            self._close(out, key)
        elif kind == "reasoning":
            if state is None:
                state = self._open(out, key, ThinkingBlock(""), "reasoning")
            if not state[3]:
                text = _summary_text(item)
                if text:
                    self._thinking(out, state, text)
            block = reasoning_block(item.get("id"), item.get("encrypted_content"), "")
            if isinstance(block, ThinkingBlock) and block.signature:
                out.append(BlockDelta(state[0], "signature", block.signature))
            elif isinstance(block, RedactedThinkingBlock):
                out.append(BlockDelta(state[0], "signature", block.data))
            self._close(out, key)

    def close(self) -> list[Event]:
        if self._done:
            return []
        self._done = True
        return [StreamError("bad_gateway", "upstream stream ended before response.completed", 502)]


# --------------------------------------------------------------------------- stream encoder


class ResponsesStreamEncoder(StreamEncoder):
    """Canonical events -> the Responses SSE sequence the official SDKs and Codex parse."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self._ns_map = _namespace_map(request.tools)
        self._tools = _echo_tools(request)
        self._seq = 0
        self._id = ""
        self._created_at = int(time.time())
        self._started = False
        self._finished = False
        self._output: list[dict] = []
        self._blocks: dict[int, dict] = {}
        self._usage = Usage()
        self._stop_reason = None
        self._blocks_in_order = BlockSequencer()  # an output item's arguments are final at output_item.done

    def _emit(self, kind: str, payload: dict) -> bytes:
        data = orjson.dumps({"type": kind, "sequence_number": self._seq, **payload})
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    def _response(self, status: str, incomplete=None, error=None, with_usage=False) -> dict:
        return response_object(self._request, self._id, self._created_at, status,
                               [i for i in self._output if i is not None],
                               usage_to(self._usage) if with_usage else None, incomplete, error, self._tools)

    def _start(self, ident: str | None) -> bytes:
        self._started = True
        self._id = client_response_id(ident)
        created = self._response("in_progress")
        return (self._emit("response.created", {"response": created})
                + self._emit("response.in_progress", {"response": self._response("in_progress")}))

    def encode(self, event: Event) -> bytes:
        events = self._blocks_in_order.push(event)
        if len(events) == 1:
            return self._encode(events[0])
        return b"".join(self._encode(ev) for ev in events)

    def _encode(self, event: Event) -> bytes:
        if self._finished:
            return b""
        out = b""
        if not self._started:
            if isinstance(event, MessageStart):
                merge_usage(self._usage, event.usage)
                return self._start(event.id)
            if isinstance(event, Ping):
                return b": ping\n\n"
            out = self._start(None)
        if isinstance(event, BlockDelta):
            return out + self._delta(event)
        if isinstance(event, BlockStart):
            return out + self._block_start(event)
        if isinstance(event, BlockStop):
            return out + self._block_stop(event.index)
        if isinstance(event, MessageDelta):
            if event.stop_reason:
                self._stop_reason = event.stop_reason
            merge_usage(self._usage, event.usage)
            return out
        if isinstance(event, MessageStop):
            return out + self._complete()
        if isinstance(event, StreamError):
            return out + self._fail(event)
        if isinstance(event, Ping):
            return out + b": ping\n\n"
        if isinstance(event, MessageStart):
            merge_usage(self._usage, event.usage)
        return out

    # -- blocks
    def _block_start(self, ev: BlockStart) -> bytes:
        out = b""
        if ev.index in self._blocks:
            out += self._block_stop(ev.index)
        b = ev.block
        oi = len(self._output)
        st = {"oi": oi, "acc": "", "sig": "", "part": False}
        if isinstance(b, TextBlock):
            st["kind"] = "text"
            st["id"] = _new_id("msg_")
            item = {"id": st["id"], "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
            out += self._emit("response.output_item.added", {"output_index": oi, "item": item})
            out += self._emit("response.content_part.added", {
                "item_id": st["id"], "output_index": oi, "content_index": 0,
                "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}})
        elif isinstance(b, ToolUseBlock):
            st["kind"] = "call"
            st["id"] = _new_id("fc_")
            st["call_id"], st["name"] = b.id, b.name
            st["initial"] = b.input
            out += self._emit("response.output_item.added", {
                "output_index": oi,
                "item": _call_item(st["id"], b.id, b.name, "", "in_progress", self._ns_map)})
        elif isinstance(b, (ThinkingBlock, RedactedThinkingBlock)):
            st["kind"] = "reasoning"
            st["id"] = _new_id("rs_")
            if isinstance(b, RedactedThinkingBlock):
                st["redacted"] = b.data
            elif b.signature:
                st["sig"] = b.signature
            out += self._emit("response.output_item.added", {
                "output_index": oi, "item": {"id": st["id"], "type": "reasoning", "summary": []}})
        elif isinstance(b, ServerToolBlock):
            if b.result is None and b.name == "web_search":  # arrives whole: the item and its events at once
                item = web_search_item(b)
                ident = {"output_index": oi, "item_id": item["id"]}
                self._output.append(item)
                return (out + self._emit("response.output_item.added", {
                    "output_index": oi, "item": dict(item, status="in_progress")})
                    + self._emit("response.web_search_call.in_progress", ident)
                    + self._emit("response.web_search_call.searching", ident)
                    + self._emit("response.web_search_call.completed", ident)
                    + self._emit("response.output_item.done", {"output_index": oi, "item": item}))
            return out  # its result has no Responses item: the model's text carries it
        else:
            return out  # images and tool results never appear in model output
        self._output.append(None)
        self._blocks[ev.index] = st
        if isinstance(b, TextBlock) and b.text:
            out += self._delta(BlockDelta(ev.index, "text", b.text))
        elif isinstance(b, ThinkingBlock) and b.thinking:
            out += self._delta(BlockDelta(ev.index, "thinking", b.thinking))
        return out

    def _delta(self, ev: BlockDelta) -> bytes:
        st = self._blocks.get(ev.index)
        if st is None or not ev.value:
            return b""
        kind = st["kind"]
        if kind == "text" and ev.kind == "text":
            st["acc"] += ev.value
            return self._emit("response.output_text.delta", {
                "item_id": st["id"], "output_index": st["oi"], "content_index": 0,
                "delta": ev.value, "logprobs": []})
        if kind == "call" and ev.kind == "json":
            st["acc"] += ev.value
            return self._emit("response.function_call_arguments.delta", {
                "item_id": st["id"], "output_index": st["oi"], "delta": ev.value})
        if kind == "reasoning":
            if ev.kind == "signature":
                st["sig"] += ev.value
                return b""
            if ev.kind == "thinking":
                out = b""
                if not st["part"]:
                    st["part"] = True
                    out += self._emit("response.reasoning_summary_part.added", {
                        "item_id": st["id"], "output_index": st["oi"], "summary_index": 0,
                        "part": {"type": "summary_text", "text": ""}})
                st["acc"] += ev.value
                return out + self._emit("response.reasoning_summary_text.delta", {
                    "item_id": st["id"], "output_index": st["oi"], "summary_index": 0, "delta": ev.value})
        return b""

    def _block_stop(self, index: int) -> bytes:
        st = self._blocks.pop(index, None)
        if st is None:
            return b""
        oi, item_id, acc = st["oi"], st["id"], st["acc"]
        kind = st["kind"]
        out = b""
        if kind == "text":
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": acc}
            out += self._emit("response.output_text.done", {
                "item_id": item_id, "output_index": oi, "content_index": 0, "text": acc, "logprobs": []})
            out += self._emit("response.content_part.done", {
                "item_id": item_id, "output_index": oi, "content_index": 0, "part": part})
            item = _message_item(item_id, acc, "completed")
        elif kind == "call":
            if not acc:
                acc = orjson.dumps(st["initial"] or {}).decode()
                out += self._emit("response.function_call_arguments.delta", {
                    "item_id": item_id, "output_index": oi, "delta": acc})
            item = _call_item(item_id, st["call_id"], st["name"], acc, "completed", self._ns_map)
            out += self._emit("response.function_call_arguments.done", {
                "item_id": item_id, "output_index": oi, "name": item["name"], "arguments": acc})
        else:
            if st["part"]:
                out += self._emit("response.reasoning_summary_text.done", {
                    "item_id": item_id, "output_index": oi, "summary_index": 0, "text": acc})
                out += self._emit("response.reasoning_summary_part.done", {
                    "item_id": item_id, "output_index": oi, "summary_index": 0,
                    "part": {"type": "summary_text", "text": acc}})
            if "redacted" in st:
                enc = REDACTED + st["redacted"]
            else:
                enc = split_signature(st["sig"])[1]
            item = _reasoning_item(item_id, acc, enc)
        self._output[oi] = item
        return out + self._emit("response.output_item.done", {"output_index": oi, "item": item})

    def _close_blocks(self) -> bytes:
        out = b""
        for index in list(self._blocks):
            out += self._block_stop(index)
        return out

    # -- end
    def _complete(self) -> bytes:
        out = self._close_blocks()
        self._finished = True
        status, incomplete = _status_for(self._stop_reason)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._emit(kind, {"response": self._response(status, incomplete, with_usage=True)})

    def _fail(self, err: StreamError) -> bytes:
        out = self._close_blocks()
        self._finished = True
        code = _FAILED_CODES.get(err.type, "server_error")
        out += self._emit("error", {"code": code, "message": err.message, "param": None})
        failed = self._response("failed", error={"code": code, "message": err.message}, with_usage=True)
        return out + self._emit("response.failed", {"response": failed})

    def close(self) -> bytes:
        return b""


CODEC = OpenAIResponsesCodec()
