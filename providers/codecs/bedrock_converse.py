"""AWS Bedrock Runtime Converse / ConverseStream (upstream dialect).

The model id is not in the body: the adapter posts to
`/model/{modelId}/converse` or `/model/{modelId}/converse-stream` (see
`converse_path`) and signs the request with SigV4 (providers/aws.py).

Wire facts (Bedrock Runtime API reference / botocore's bedrock-runtime model):
- Content blocks: {text} {image: {format, source: {bytes: base64}}}
  {toolUse: {toolUseId, name, input}} {toolResult: {toolUseId, content: [{text}|{json}|{image}], status}}
  {reasoningContent: {reasoningText: {text, signature}} | {redactedContent: base64}}
  {cachePoint: {type: default, ttl?}} placed AFTER the block it closes.
- Empty text blocks are rejected; `toolConfig` must be present whenever the
  history holds toolUse/toolResult blocks; `toolChoice` has no "none" member.
- Usage: `inputTokens` EXCLUDES cache reads and writes, which are reported in
  `cacheReadInputTokens` / `cacheWriteInputTokens`; the canonical input_tokens is
  their sum (see canonical.py's token convention).
- Streams are `application/vnd.amazon.eventstream` frames: messageStart,
  contentBlockStart (tool use only: text blocks have none), contentBlockDelta,
  contentBlockStop, messageStop {stopReason}, then metadata {usage, metrics};
  exceptions arrive as frames with `:message-type: exception`.

Front door: Bedrock is never a front door here. decode_request/encode_response
are implemented (pure dict mapping, useful for tests and symmetry);
stream_encoder raises NotImplementedError because producing event-stream frames
would need hand-written binary framing (botocore has a decoder, no encoder).
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

import orjson

from ..aws import EventStreamDecodeError, EventStreamDecoder
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
)
from .errors import GatewayError, UnsupportedFeature, error_type_for_status, is_retryable_status
from .ollama import _split_data_url, guess_image_type

_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                  "image/webp": "webp"}

_STOP_REASONS = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "guardrail_intervened": "refusal",
    "content_filtered": "refusal",
    "model_context_window_exceeded": "max_tokens",
    "malformed_model_output": "error",
    "malformed_tool_use": "error",
}
_STOP_REASONS_OUT = {"end_turn": "end_turn", "tool_use": "tool_use", "max_tokens": "max_tokens",
                     "stop_sequence": "stop_sequence", "refusal": "content_filtered"}

# Exception frames / error types -> (canonical type, status, retryable)
_EXCEPTIONS = {
    "throttlingexception": ("rate_limit", 429, True),
    "servicequotaexceededexception": ("rate_limit", 429, True),
    "modelnotreadyexception": ("overloaded", 503, True),
    "serviceunavailableexception": ("overloaded", 503, True),
    "validationexception": ("invalid_request", 400, False),
    "modelstreamerrorexception": ("api_error", 500, True),
    "internalserverexception": ("api_error", 500, True),
    "modelerrorexception": ("api_error", 500, True),
    "modeltimeoutexception": ("timeout", 504, True),
    "accessdeniedexception": ("permission", 403, False),
    "resourcenotfoundexception": ("not_found", 404, False),
}

# Reasoning effort -> Anthropic thinking budget when only an effort is known.
_EFFORT_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768, "max": 32768}
_DEFAULT_BUDGET = 4096
_EMPTY_TOOL_RESULT = "(no output)"  # Bedrock rejects empty text blocks

_CONTEXT_PHRASES = ("too long", "context length", "context window", "maximum context", "too many tokens",
                    "input length")


def converse_path(model_id: str, stream: bool = False) -> str:
    """`/model/{modelId}/converse[-stream]` with the model id percent-encoded
    (`:` in versioned ids, `/` in ARNs), exactly as the request must be signed."""
    return "/model/%s/%s" % (quote(model_id, safe=""), "converse-stream" if stream else "converse")


def runtime_endpoint(region: str) -> str:
    return "https://bedrock-runtime.%s.amazonaws.com" % region


def is_anthropic_model(model_id: str) -> bool:
    m = (model_id or "").lower()
    return "anthropic" in m or "claude" in m


def usage_from_bedrock(usage: dict | None) -> Usage:
    usage = usage if isinstance(usage, dict) else {}
    cache_read = int(usage.get("cacheReadInputTokens") or 0)
    cache_write = int(usage.get("cacheWriteInputTokens") or 0)
    return Usage(input_tokens=int(usage.get("inputTokens") or 0) + cache_read + cache_write,
                 output_tokens=int(usage.get("outputTokens") or 0),
                 cache_read_tokens=cache_read, cache_write_tokens=cache_write)


def usage_to_bedrock(usage: Usage) -> dict:
    uncached = max(0, usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens)
    out = {"inputTokens": uncached, "outputTokens": usage.output_tokens,
           "totalTokens": usage.input_tokens + usage.output_tokens}
    if usage.cache_read_tokens:
        out["cacheReadInputTokens"] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        out["cacheWriteInputTokens"] = usage.cache_write_tokens
    return out


def _cache_point(cache_control) -> dict:
    point = {"type": "default"}
    ttl = cache_control.get("ttl") if isinstance(cache_control, dict) else None
    if ttl in ("5m", "1h"):
        point["ttl"] = ttl
    return {"cachePoint": point}


def _cache_control(point) -> dict:
    ttl = point.get("ttl") if isinstance(point, dict) else None
    return {"type": "ephemeral", "ttl": ttl} if ttl else {"type": "ephemeral"}


def _image(block: ImageBlock) -> dict:
    data, media_type = block.data, block.media_type
    if not data and block.url:
        parsed = _split_data_url(block.url)
        if parsed is None:
            raise UnsupportedFeature("Bedrock Converse accepts only inline (base64) images, not image URLs.")
        media_type, data = parsed
    if not data:
        raise UnsupportedFeature("Image block without data.")
    media_type = (media_type or guess_image_type(data)).lower()
    fmt = _IMAGE_FORMATS.get(media_type)
    if fmt is None:
        raise UnsupportedFeature("Bedrock Converse supports png, jpeg, gif and webp images, not %s." % media_type)
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _image_block(image: dict) -> ImageBlock:
    fmt = str(image.get("format") or "png")
    return ImageBlock(media_type="image/" + fmt, data=str((image.get("source") or {}).get("bytes") or ""))


def _exception_error(name: str, message: str) -> GatewayError:
    type_, status, retryable = _EXCEPTIONS.get((name or "").split(":")[0].lower(), ("api_error", 500, True))
    if type_ == "invalid_request" and any(p in message.lower() for p in _CONTEXT_PHRASES):
        type_ = "context_length"
    return GatewayError(type_, message, status, retryable=retryable)


class BedrockConverseCodec(CodecDefaults):
    name = "bedrock_converse"
    stream_media_type = "application/vnd.amazon.eventstream"

    # ------------------------------------------------------------------ requests

    def encode_request(self, request: Request) -> dict:
        anthropic = is_anthropic_model(request.model)
        body: dict = {}
        if request.source_format == self.name:
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
                    content.append({"toolUse": {"toolUseId": block.id, "name": block.name,
                                                "input": block.input if isinstance(block.input, dict) else {}}})
                elif isinstance(block, ToolResultBlock):
                    has_tool_blocks = True
                    content.append({"toolResult": self._tool_result(block, anthropic)})
                elif isinstance(block, ThinkingBlock):
                    # Unsigned thinking cannot be replayed (Anthropic rejects it); drop it.
                    if block.signature:
                        content.append({"reasoningContent": {"reasoningText": {
                            "text": block.thinking, "signature": block.signature}}})
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
        thinking = self._thinking(request) if anthropic else None
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

        tool_config = self._tool_config(request, has_tool_blocks, list(history_tools))
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
                body["outputConfig"] = {"textFormat": {"type": "json_schema",
                                                       "structure": {"jsonSchema": json_schema}}}
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
            spec: dict = {"name": t.name, "inputSchema": {"json": t.input_schema or {"type": "object", "properties": {}}}}
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
            tools = [{"toolSpec": {"name": name, "description": "Tool used earlier in this conversation.",
                                   "inputSchema": {"json": {"type": "object", "properties": {}}}}}
                     for name in history_names] or [{"toolSpec": {
                         "name": "unavailable_tool", "description": "Placeholder; do not call.",
                         "inputSchema": {"json": {"type": "object", "properties": {}}}}}]
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

    def decode_request(self, body: dict, *, require_max_tokens: bool = True) -> Request:
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
                block = self._decode_block(item)
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
                    tools.append(Tool(name=spec["name"], description=spec.get("description"),
                                      input_schema=(spec.get("inputSchema") or {}).get("json")
                                      or {"type": "object", "properties": {}}))
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
            source_format=self.name,
        )

    # ------------------------------------------------------------------ responses

    @staticmethod
    def _decode_block(item: dict) -> Block | None:
        if not isinstance(item, dict):
            return None
        if "text" in item:
            return TextBlock(str(item["text"]))
        if "toolUse" in item:
            tu = item["toolUse"] or {}
            return ToolUseBlock(id=str(tu.get("toolUseId") or ""), name=str(tu.get("name") or ""),
                                input=tu.get("input") if isinstance(tu.get("input"), dict) else {})
        if "reasoningContent" in item:
            rc = item["reasoningContent"] or {}
            if "redactedContent" in rc:
                return RedactedThinkingBlock(str(rc["redactedContent"]))
            rt = rc.get("reasoningText") or {}
            return ThinkingBlock(str(rt.get("text") or ""), signature=rt.get("signature"))
        if "image" in item:
            return _image_block(item["image"] or {})
        if "toolResult" in item:
            tr = item["toolResult"] or {}
            parts: list[Block] = []
            for c in tr.get("content") or []:
                if "text" in c:
                    parts.append(TextBlock(str(c["text"])))
                elif "json" in c:
                    parts.append(TextBlock(orjson.dumps(c["json"]).decode()))
                elif "image" in c:
                    parts.append(_image_block(c["image"] or {}))
            return ToolResultBlock(tool_use_id=str(tr.get("toolUseId") or ""), content=parts,
                                   is_error=tr.get("status") == "error")
        if "citationsContent" in item:
            cc = item["citationsContent"] or {}
            text = "".join(str(c.get("text") or "") for c in cc.get("content") or [] if isinstance(c, dict))
            return TextBlock(text) if text else None
        return None

    def decode_response(self, body: dict, *, model: str = "") -> Response:
        """`model` is optional: Converse responses do not name the model (it was in the URL)."""
        if not isinstance(body, dict) or not isinstance(body.get("output"), dict):
            raise GatewayError("bad_gateway", "Upstream Bedrock response has no output.", 502, retryable=True)
        message = body["output"].get("message") or {}
        content = [b for b in (self._decode_block(i) for i in message.get("content") or []) if b is not None]
        stop_reason = _STOP_REASONS.get(str(body.get("stopReason") or ""), "end_turn")
        amrf = body.get("additionalModelResponseFields") or {}
        stop_sequence = amrf.get("stop_sequence") if isinstance(amrf, dict) else None
        return Response(id="msg_bdrk_" + uuid.uuid4().hex[:24], model=model, content=content,
                        stop_reason=stop_reason, stop_sequence=stop_sequence if isinstance(stop_sequence, str) else None,
                        usage=usage_from_bedrock(body.get("usage")))

    def encode_response(self, response: Response, request: Request) -> dict:
        content: list[dict] = []
        for block in response.content:
            if isinstance(block, TextBlock):
                content.append({"text": block.text})
            elif isinstance(block, ToolUseBlock):
                content.append({"toolUse": {"toolUseId": block.id, "name": block.name, "input": block.input}})
            elif isinstance(block, ThinkingBlock):
                rt = {"text": block.thinking}
                if block.signature:
                    rt["signature"] = block.signature
                content.append({"reasoningContent": {"reasoningText": rt}})
            elif isinstance(block, RedactedThinkingBlock):
                content.append({"reasoningContent": {"redactedContent": block.data}})
            elif isinstance(block, ImageBlock):
                content.append(_image(block))
        return {"output": {"message": {"role": "assistant", "content": content}},
                "stopReason": _STOP_REASONS_OUT.get(response.stop_reason or "end_turn", "end_turn"),
                "usage": usage_to_bedrock(response.usage),
                "metrics": {"latencyMs": 0}}

    # ------------------------------------------------------------------ streams

    def stream_decoder(self, *, model: str = "") -> StreamDecoder:
        return BedrockStreamDecoder(model)

    def stream_encoder(self, request: Request) -> StreamEncoder:
        # Bedrock is never a front door in Junction; an encoder would have to write binary
        # event-stream frames by hand (botocore only decodes them).
        raise NotImplementedError("bedrock_converse is an upstream-only format")

    # ------------------------------------------------------------------ errors

    def encode_error(self, error: GatewayError) -> tuple[int, dict]:
        return error.status, {"message": error.message}

    def decode_error(self, status: int, body: bytes) -> GatewayError:
        message = None
        type_name = ""
        try:
            data = orjson.loads(body) if body else None
        except (ValueError, TypeError):
            data = None
        if isinstance(data, dict):
            message = data.get("message") or data.get("Message")
            type_name = str(data.get("__type") or data.get("code") or "").rsplit("#", 1)[-1]
            if not isinstance(message, str):
                message = None
        if not message:
            snippet = body[:200].decode("utf-8", "replace").strip() if isinstance(body, (bytes, bytearray)) else ""
            message = "Upstream Bedrock error (HTTP %d)%s" % (status, ": " + snippet if snippet else "")
        if type_name and type_name.split(":")[0].lower() in _EXCEPTIONS:
            err = _exception_error(type_name, message)
            err.status = status or err.status
            return err
        # The error type travels in the x-amzn-ErrorType header, which this contract does
        # not pass in: map by status (429 = ThrottlingException, 424 = ModelErrorException...).
        if status == 424:
            return GatewayError("api_error", message, 424, retryable=True)
        if status == 408:
            return GatewayError("timeout", message, 408, retryable=True)
        type_ = error_type_for_status(status)
        if type_ == "invalid_request" and any(p in message.lower() for p in _CONTEXT_PHRASES):
            type_ = "context_length"
        return GatewayError(type_, message, status, retryable=is_retryable_status(status))


# --------------------------------------------------------------------------- stream decoder


class BedrockStreamDecoder(StreamDecoder):
    """Event-stream bytes -> canonical events.

    Bedrock block indexes map to canonical indexes in order of appearance. Text and
    reasoning blocks have no contentBlockStart: they open on their first delta.
    Redacted reasoning is buffered until its contentBlockStop (the canonical block
    carries its data at BlockStart). messageStop only records the stop reason: the
    usage comes in the metadata frame after it, so MessageDelta + MessageStop are
    emitted on metadata (or at close() if metadata never comes).
    """

    def __init__(self, model: str = "") -> None:
        self._frames = EventStreamDecoder()
        self._model = model
        self._started = False
        self._finished = False
        self._next_index = 0
        self._blocks: dict[int, tuple[int, str]] = {}  # bedrock index -> (canonical index, kind)
        self._open: set[int] = set()  # bedrock indexes currently open
        self._redacted: dict[int, list[str]] = {}
        self._stop_reason = None
        self._stop_sequence = None
        self._stopped = False
        self._usage: Usage | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        if self._finished:
            return []
        out: list[Event] = []
        try:
            frames = self._frames.feed(chunk)
        except EventStreamDecodeError as exc:
            self._finished = True
            return [StreamError("bad_gateway", "Malformed Bedrock event stream: %s" % exc, 502)]
        for event_type, message_type, payload in frames:
            if self._finished:
                break
            if message_type != "event":
                self._finished = True
                message = str(payload.get("message") or payload.get("Message") or event_type or "stream error")
                err = _exception_error(event_type, message)
                out.append(StreamError(err.type, message, err.status))
                break
            self._event(event_type, payload, out)
        return out

    def close(self) -> list[Event]:
        if self._finished:
            return []
        self._finished = True
        if self._stopped:
            out: list[Event] = []
            self._finish(out)
            return out
        return [StreamError("bad_gateway", "Bedrock stream ended before messageStop.", 502)]

    # -- internals

    def _start(self, out: list[Event]) -> None:
        if not self._started:
            self._started = True
            out.append(MessageStart(id="msg_bdrk_" + uuid.uuid4().hex[:24], model=self._model))

    def _open_block(self, bidx: int, kind: str, block: Block, out: list[Event]) -> int:
        # Blocks do not overlap in Bedrock streams; close a stray open one defensively.
        for other in [i for i in self._open if i != bidx]:
            self._stop_block(other, out)
        cidx = self._next_index
        self._next_index += 1
        self._blocks[bidx] = (cidx, kind)
        self._open.add(bidx)
        out.append(BlockStart(cidx, block))
        return cidx

    def _index_for(self, bidx: int, kind: str, out: list[Event]) -> int:
        known = self._blocks.get(bidx)
        if known is not None and bidx in self._open and known[1] == kind:
            return known[0]
        if known is not None and bidx in self._open:
            self._stop_block(bidx, out)
        block: Block
        if kind == "text":
            block = TextBlock("")
        elif kind == "thinking":
            block = ThinkingBlock("")
        else:  # tool input without contentBlockStart: keep the input, invent an id
            block = ToolUseBlock(id="tooluse_" + uuid.uuid4().hex[:22], name="", input={})
        return self._open_block(bidx, kind, block, out)

    def _stop_block(self, bidx: int, out: list[Event]) -> None:
        if bidx in self._redacted:
            data = "".join(self._redacted.pop(bidx))
            cidx = self._next_index
            self._next_index += 1
            self._blocks[bidx] = (cidx, "redacted")
            out.append(BlockStart(cidx, RedactedThinkingBlock(data)))
            out.append(BlockStop(cidx))
            return
        if bidx in self._open:
            self._open.discard(bidx)
            out.append(BlockStop(self._blocks[bidx][0]))

    def _event(self, event_type: str, payload: dict, out: list[Event]) -> None:
        if event_type == "messageStart":
            self._start(out)
            return
        if event_type == "contentBlockStart":
            self._start(out)
            bidx = int(payload.get("contentBlockIndex") or 0)
            tool = (payload.get("start") or {}).get("toolUse")
            if isinstance(tool, dict):
                self._open_block(bidx, "tool", ToolUseBlock(id=str(tool.get("toolUseId") or ""),
                                                            name=str(tool.get("name") or ""), input={}), out)
            return
        if event_type == "contentBlockDelta":
            self._start(out)
            bidx = int(payload.get("contentBlockIndex") or 0)
            delta = payload.get("delta") or {}
            if "text" in delta:
                text = delta.get("text")
                if text:
                    out.append(BlockDelta(self._index_for(bidx, "text", out), "text", str(text)))
            elif "toolUse" in delta:
                fragment = (delta.get("toolUse") or {}).get("input")
                if fragment:
                    out.append(BlockDelta(self._index_for(bidx, "tool", out), "json", str(fragment)))
            elif "reasoningContent" in delta:
                rc = delta.get("reasoningContent") or {}
                if "redactedContent" in rc:
                    self._redacted.setdefault(bidx, []).append(str(rc.get("redactedContent") or ""))
                    return
                if rc.get("text"):
                    out.append(BlockDelta(self._index_for(bidx, "thinking", out), "thinking", str(rc["text"])))
                if rc.get("signature"):
                    out.append(BlockDelta(self._index_for(bidx, "thinking", out), "signature", str(rc["signature"])))
            # citation / toolResult / image deltas have no canonical form: ignored.
            return
        if event_type == "contentBlockStop":
            self._stop_block(int(payload.get("contentBlockIndex") or 0), out)
            return
        if event_type == "messageStop":
            self._start(out)
            for bidx in list(self._open) + list(self._redacted):
                self._stop_block(bidx, out)
            self._stopped = True
            self._stop_reason = _STOP_REASONS.get(str(payload.get("stopReason") or ""), "end_turn")
            amrf = payload.get("additionalModelResponseFields")
            if isinstance(amrf, dict) and isinstance(amrf.get("stop_sequence"), str):
                self._stop_sequence = amrf["stop_sequence"]
            return
        if event_type == "metadata":
            self._usage = usage_from_bedrock(payload.get("usage"))
            if self._stopped:
                self._finished = True
                self._finish(out)
            return
        # unknown event types are ignored (forward compatibility)

    def _finish(self, out: list[Event]) -> None:
        out.append(MessageDelta(stop_reason=self._stop_reason, stop_sequence=self._stop_sequence, usage=self._usage))
        out.append(MessageStop())


CODEC = BedrockConverseCodec()
