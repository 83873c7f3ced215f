"""Ollama native API (`POST /api/chat`), both directions.

Wire facts this codec relies on (Ollama API reference, docs/api.md):
- `stream` defaults to TRUE when absent; streams are NDJSON (one JSON object a
  line), the last object has `done: true`, `done_reason` (stop/length/...) and
  the counters `prompt_eval_count` / `eval_count` plus durations in nanoseconds.
- Messages are `{role: system|user|assistant|tool, content: str, images: [base64],
  thinking: str, tool_calls: [{function: {name, arguments: {...object...}}}],
  tool_name: str}`. Tool calls carry no ids (newer servers may add `id` /
  `function.index`; both are honoured when present).
- `think`: bool or "low"/"medium"/"high"; `format`: "json" or a JSON schema;
  `options`: temperature, top_p, stop, num_predict, num_ctx, seed, ...;
  `keep_alive`.
- Errors are `{"error": "message"}` with the HTTP status; a failure after the
  stream started is an `{"error": ...}` line.

Tool-call ids: Ollama has none, the canonical model needs them.
- Decoding a request: calls get stable positional ids `call_<n>` (n counts tool
  calls across the whole request, unless the message carries its own `id`), and
  each `tool` message is matched back to the earliest unanswered call of the
  preceding assistant turn (by `tool_call_id` if present, else by `tool_name`,
  else by order).
- Decoding a response/stream: ids are `call_<random>_<n>`, unique across turns,
  because a client may replay them later to an upstream that requires unique ids.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from datetime import datetime, timezone

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
    Request,
    Response,
    StreamError,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
    merge_usage,
)
from .errors import GatewayError, UnsupportedFeature, error_type_for_status, is_retryable_status
from .sequencer import BlockSequencer

# Options mapped to canonical fields; everything else in `options` rides in Request.extra["options"].
_CANONICAL_OPTIONS = ("temperature", "top_p", "stop", "num_predict")
# Top-level request keys this codec understands (the rest go to Request.extra).
_KNOWN_KEYS = {"model", "messages", "tools", "stream", "think", "format", "options", "stream_options"}


# --------------------------------------------------------------------------- helpers


def guess_image_type(data: str) -> str:
    """Media type from the magic bytes of base64 image data (Ollama sends no type)."""
    try:
        head = base64.b64decode(data[:24] + "=" * (-len(data[:24]) % 4), validate=False)
    except (binascii.Error, ValueError):
        return "image/png"
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"GIF8"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"BM"):
        return "image/bmp"
    return "image/png"


def _split_data_url(url: str) -> tuple[str, str] | None:
    """`data:image/png;base64,XXXX` -> ("image/png", "XXXX")."""
    if not url.startswith("data:"):
        return None
    meta, sep, data = url[5:].partition(",")
    if not sep or not meta.endswith(";base64"):
        return None
    return meta[: -len(";base64")] or "image/png", data


def _image_data(block: ImageBlock) -> str:
    if block.data:
        return block.data
    if block.url:
        parsed = _split_data_url(block.url)
        if parsed:
            return parsed[1]
    raise UnsupportedFeature("Ollama accepts only base64 images, not image URLs.")


def _parse_arguments(arguments) -> dict:
    """Ollama sends an object; OpenAI-shaped bodies (Goose via /v1) send a JSON string."""
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str):
        if not arguments.strip():
            return {}
        try:
            value = orjson.loads(arguments)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {"value": value}
    if arguments is None:
        return {}
    return {"value": arguments}


def _content_text(content) -> str:
    """Ollama content is a string; tolerate OpenAI-style part lists."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in ("text", None))
    return str(content)


def _now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stop_from_done_reason(done_reason: str | None, had_tools: bool):
    if had_tools:
        return "tool_use"
    if done_reason == "length":
        return "max_tokens"
    return "end_turn"


def _done_reason(stop_reason) -> str:
    return "length" if stop_reason == "max_tokens" else "stop"


def _dumps_line(obj: dict) -> bytes:
    return orjson.dumps(obj) + b"\n"


# --------------------------------------------------------------------------- codec


class OllamaCodec(CodecDefaults):
    name = "ollama"
    stream_media_type = "application/x-ndjson"

    # ------------------------------------------------------------------ requests

    def decode_request(self, body: dict, *, require_max_tokens: bool = True) -> Request:
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
                    blocks.append(ToolUseBlock(id=str(call_id), name=name, input=_parse_arguments(fn.get("arguments"))))
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
                    if (wanted_id and cid == wanted_id) or (not wanted_id and (not wanted_name or cname == wanted_name)):
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
                tools.append(Tool(name=fn["name"], description=fn.get("description"),
                                  input_schema=fn.get("parameters") or {"type": "object", "properties": {}}))

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
            source_format=self.name,
        )

    def encode_request(self, request: Request) -> dict:
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
        if request.source_format == self.name:
            # Same format: keep the client's unknown top-level fields (keep_alive, ...).
            body.update({k: v for k, v in request.extra.items() if k != "options"})
        body["model"] = request.model
        body["messages"] = messages
        if request.tools is not None and not (request.tool_choice and request.tool_choice.type == "none"):
            # tool_choice "none" is expressed by not offering the tools; "any"/"tool" cannot be
            # forced on Ollama and degrade to "auto".
            body["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description or "", "parameters": t.input_schema}}
                for t in request.tools]
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
        if request.source_format == self.name and isinstance(request.extra.get("options"), dict):
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

    # ------------------------------------------------------------------ responses

    def decode_response(self, body: dict, *, model: str = "") -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
            if isinstance(body, dict) and body.get("error"):
                raise self.decode_error(500, orjson.dumps(body))
            raise GatewayError("bad_gateway", "Upstream Ollama response has no message.", 502, retryable=True)
        msg = body["message"]
        content: list[Block] = []
        if msg.get("thinking"):
            content.append(ThinkingBlock(str(msg["thinking"])))
        text = _content_text(msg.get("content"))
        if text:
            content.append(TextBlock(text))
        prefix = "call_%s_" % uuid.uuid4().hex[:12]
        calls = msg.get("tool_calls") or []
        for i, call in enumerate(calls):
            fn = (call or {}).get("function") or {}
            content.append(ToolUseBlock(id=str(call.get("id") or prefix + str(i)), name=fn.get("name") or "",
                                        input=_parse_arguments(fn.get("arguments"))))
        return Response(
            id="msg_" + uuid.uuid4().hex[:24],
            model=str(body.get("model") or ""),
            content=content,
            stop_reason=_stop_from_done_reason(body.get("done_reason"), bool(calls)),
            usage=Usage(input_tokens=int(body.get("prompt_eval_count") or 0),
                        output_tokens=int(body.get("eval_count") or 0)),
        )

    def encode_response(self, response: Response, request: Request) -> dict:
        text, thinking, calls = [], [], []
        for block in response.content:
            if isinstance(block, TextBlock):
                text.append(block.text)
            elif isinstance(block, ThinkingBlock):
                thinking.append(block.thinking)
            elif isinstance(block, ToolUseBlock):
                calls.append({"function": {"name": block.name, "arguments": block.input or {}}})
        message: dict = {"role": "assistant", "content": "".join(text)}
        if thinking:
            message["thinking"] = "".join(thinking)
        if calls:
            message["tool_calls"] = calls
        return {
            "model": request.model,
            "created_at": _now_rfc3339(),
            "message": message,
            "done": True,
            "done_reason": _done_reason(response.stop_reason),
            "total_duration": 0,
            "load_duration": 0,
            "prompt_eval_count": response.usage.input_tokens,
            "prompt_eval_duration": 0,
            "eval_count": response.usage.output_tokens,
            "eval_duration": 0,
        }

    # ------------------------------------------------------------------ streams

    def stream_decoder(self, *, model: str = "") -> StreamDecoder:
        return OllamaStreamDecoder()

    def stream_encoder(self, request: Request) -> StreamEncoder:
        return OllamaStreamEncoder(request)

    # ------------------------------------------------------------------ errors

    def encode_error(self, error: GatewayError) -> tuple[int, dict]:
        return error.status, {"error": error.message}

    def decode_error(self, status: int, body: bytes) -> GatewayError:
        message = None
        try:
            data = orjson.loads(body) if body else None
        except (ValueError, TypeError):
            data = None
        if isinstance(data, dict):
            err = data.get("error")
            if isinstance(err, str):
                message = err
            elif isinstance(err, dict):  # OpenAI-compatible shape from Ollama's /v1 endpoints
                message = err.get("message")
            elif isinstance(data.get("message"), str):
                message = data["message"]
        if not message:
            snippet = body[:200].decode("utf-8", "replace").strip() if isinstance(body, (bytes, bytearray)) else ""
            message = "Upstream Ollama error (HTTP %d)%s" % (status, ": " + snippet if snippet else "")
        type_ = error_type_for_status(status)
        if status == 404 or (status == 400 and "not found" in message.lower() and "model" in message.lower()):
            type_ = "not_found"
        return GatewayError(type_, message, status, retryable=is_retryable_status(status))


# --------------------------------------------------------------------------- stream decoder


class OllamaStreamDecoder(StreamDecoder):
    """NDJSON lines -> canonical events. Thinking and text deltas open blocks lazily;
    each (complete) tool call becomes BlockStart + one json delta + BlockStop."""

    def __init__(self) -> None:
        self._buf = b""
        self._started = False
        self._finished = False
        self._index = -1
        self._open: str | None = None  # "text" / "thinking" / None
        self._had_tools = False
        self._call_prefix = "call_%s_" % uuid.uuid4().hex[:12]
        self._calls = 0

    def feed(self, chunk: bytes) -> list[Event]:
        if self._finished:
            return []
        buf = self._buf + chunk
        out: list[Event] = []
        start = 0
        while not self._finished:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            self._line(line, out)
        self._buf = buf[start:] if not self._finished else b""
        return out

    def close(self) -> list[Event]:
        if self._finished:
            return []
        out: list[Event] = []
        if self._buf.strip():
            line, self._buf = self._buf, b""
            self._line(line, out)  # a last line without its newline
        if not self._finished:
            self._finished = True
            out.append(StreamError("bad_gateway", "Ollama stream ended before its final (done) message.", 502))
        return out

    # -- internals

    def _line(self, line: bytes, out: list[Event]) -> None:
        line = line.strip()
        if not line:
            return
        try:
            obj = orjson.loads(line)
        except ValueError:
            self._finished = True
            out.append(StreamError("bad_gateway", "Ollama stream carried a line that is not JSON.", 502))
            return
        if not isinstance(obj, dict):
            self._finished = True
            out.append(StreamError("bad_gateway", "Ollama stream carried a line that is not a JSON object.", 502))
            return
        if obj.get("error"):
            self._finished = True
            err = obj["error"]
            message = err if isinstance(err, str) else str(err.get("message") if isinstance(err, dict) else err)
            out.append(StreamError("api_error", message, 500))
            return
        if not self._started:
            self._started = True
            out.append(MessageStart(id="msg_" + uuid.uuid4().hex[:24], model=str(obj.get("model") or "")))
        msg = obj.get("message") or {}
        if isinstance(msg, dict):
            thinking = msg.get("thinking")
            if thinking:
                self._ensure("thinking", out)
                out.append(BlockDelta(self._index, "thinking", str(thinking)))
            content = msg.get("content")
            if content:
                self._ensure("text", out)
                out.append(BlockDelta(self._index, "text", content if isinstance(content, str) else str(content)))
            for call in msg.get("tool_calls") or []:
                self._close_block(out)
                fn = (call or {}).get("function") or {}
                call_id = str(call.get("id") or self._call_prefix + str(self._calls))
                self._calls += 1
                self._had_tools = True
                self._index += 1
                out.append(BlockStart(self._index, ToolUseBlock(id=call_id, name=fn.get("name") or "", input={})))
                args = fn.get("arguments")
                args_json = args if isinstance(args, str) else orjson.dumps(args if args is not None else {}).decode()
                out.append(BlockDelta(self._index, "json", args_json))
                out.append(BlockStop(self._index))
        if obj.get("done"):
            self._close_block(out)
            self._finished = True
            out.append(MessageDelta(stop_reason=_stop_from_done_reason(obj.get("done_reason"), self._had_tools),
                                    usage=Usage(input_tokens=int(obj.get("prompt_eval_count") or 0),
                                                output_tokens=int(obj.get("eval_count") or 0))))
            out.append(MessageStop())

    def _ensure(self, kind: str, out: list[Event]) -> None:
        if self._open == kind:
            return
        self._close_block(out)
        self._index += 1
        self._open = kind
        out.append(BlockStart(self._index, TextBlock("") if kind == "text" else ThinkingBlock("")))

    def _close_block(self, out: list[Event]) -> None:
        if self._open is not None:
            out.append(BlockStop(self._index))
            self._open = None


# --------------------------------------------------------------------------- stream encoder


class OllamaStreamEncoder(StreamEncoder):
    """Canonical events -> NDJSON lines as Ollama writes them. Text and thinking
    deltas are written as they come; a tool call is buffered until its BlockStop
    and written as one `message.tool_calls` line (arguments as an object)."""

    def __init__(self, request: Request) -> None:
        self._model = request.model
        self._t0 = time.monotonic_ns()
        self._first: int | None = None
        self._tools: dict[int, list] = {}  # index -> [name, [json fragments]]
        self._usage = Usage()
        self._stop = None
        self._done = False
        self._blocks_in_order = BlockSequencer()  # a tool line is written at its (deferred) BlockStop

    def _line(self, message: dict, done: bool = False, **extra) -> bytes:
        obj = {"model": self._model, "created_at": _now_rfc3339(), "message": message, "done": done}
        obj.update(extra)
        return _dumps_line(obj)

    def encode(self, event: Event) -> bytes:
        events = self._blocks_in_order.push(event)
        if len(events) == 1:
            return self._encode(events[0])
        return b"".join(self._encode(ev) for ev in events)

    def _encode(self, event: Event) -> bytes:
        if self._done:
            return b""
        if isinstance(event, BlockDelta):
            if self._first is None:
                self._first = time.monotonic_ns()
            if event.kind == "text":
                return self._line({"role": "assistant", "content": event.value})
            if event.kind == "thinking":
                return self._line({"role": "assistant", "content": "", "thinking": event.value})
            if event.kind == "json" and event.index in self._tools:
                self._tools[event.index][1].append(event.value)
            return b""  # signatures have no Ollama form
        if isinstance(event, BlockStart):
            if isinstance(event.block, ToolUseBlock):
                self._tools[event.index] = [event.block.name, []]
            return b""
        if isinstance(event, BlockStop):
            tool = self._tools.pop(event.index, None)
            if tool is None:
                return b""
            raw = "".join(tool[1])
            try:
                args = orjson.loads(raw) if raw.strip() else {}
            except ValueError:
                args = None
            if not isinstance(args, dict):
                # Ollama clients expect an object here; arguments that are not a JSON
                # object (truncated by max_tokens, or a model glitch) are sent as {}.
                args = {}
            return self._line({"role": "assistant", "content": "",
                               "tool_calls": [{"function": {"name": tool[0], "arguments": args}}]})
        if isinstance(event, MessageStart):
            merge_usage(self._usage, event.usage)
            return b""
        if isinstance(event, MessageDelta):
            self._stop = event.stop_reason
            merge_usage(self._usage, event.usage)
            return b""
        if isinstance(event, MessageStop):
            self._done = True
            now = time.monotonic_ns()
            first = self._first if self._first is not None else now
            return self._line({"role": "assistant", "content": ""}, True,
                              done_reason=_done_reason(self._stop),
                              total_duration=now - self._t0,
                              load_duration=0,
                              prompt_eval_count=self._usage.input_tokens,
                              prompt_eval_duration=first - self._t0,
                              eval_count=self._usage.output_tokens,
                              eval_duration=now - first)
        if isinstance(event, StreamError):
            self._done = True
            return _dumps_line({"error": event.message})
        if isinstance(event, Ping):
            return b""
        return b""


CODEC = OllamaCodec()
