"""The canonical request/response/stream model every codec translates to and from.

Pure data, no Django, no I/O. It is a content-block model (Anthropic-shaped, the
richest of the formats) so nothing a client sends has to be squeezed on the way
through: text, images, tool use/results, thinking with signatures, redacted
thinking, cache markers.

Token accounting convention (all codecs follow it):
    Usage.input_tokens      = ALL prompt tokens, cached ones included (OpenAI's
                              prompt_tokens; Anthropic's input_tokens +
                              cache_read_input_tokens + cache_creation_input_tokens)
    Usage.cache_read_tokens = the part of input_tokens read from the prompt cache
    Usage.cache_write_tokens= the part of input_tokens written to the prompt cache
    Usage.output_tokens     = all generated tokens, reasoning included
    Usage.reasoning_tokens  = the part of output_tokens spent on reasoning
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

# --------------------------------------------------------------------------- blocks


@dataclass(slots=True)
class TextBlock:
    text: str
    cache_control: dict | None = None
    type: Literal["text"] = "text"


@dataclass(slots=True)
class ImageBlock:
    """Either base64 `data` with `media_type`, or a `url`."""

    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    detail: str | None = None  # OpenAI's image detail hint, kept when both sides are OpenAI
    cache_control: dict | None = None
    type: Literal["image"] = "image"


@dataclass(slots=True)
class ToolUseBlock:
    id: str
    name: str
    input: dict = field(default_factory=dict)
    cache_control: dict | None = None
    type: Literal["tool_use"] = "tool_use"


@dataclass(slots=True)
class ToolResultBlock:
    tool_use_id: str
    content: list["Block"] = field(default_factory=list)  # TextBlock / ImageBlock
    is_error: bool = False
    cache_control: dict | None = None
    type: Literal["tool_result"] = "tool_result"


@dataclass(slots=True)
class ThinkingBlock:
    thinking: str
    signature: str | None = None
    type: Literal["thinking"] = "thinking"


@dataclass(slots=True)
class RedactedThinkingBlock:
    data: str
    type: Literal["redacted_thinking"] = "redacted_thinking"


@dataclass(slots=True)
class ServerToolBlock:
    """A call or result of a tool the *provider* ran (Anthropic server_tool_use /
    web_search_tool_result, Responses web_search_call): shown to the client, never run by
    it. `result` is None on a call and the provider's result content on a result (whose
    `id` is the call's). In streams it arrives whole: BlockStart then BlockStop, no deltas."""

    id: str
    name: str  # "web_search"
    input: dict = field(default_factory=dict)
    result: list | None = None
    type: Literal["server_tool"] = "server_tool"


Block = Union[TextBlock, ImageBlock, ToolUseBlock, ToolResultBlock, ThinkingBlock, RedactedThinkingBlock,
              ServerToolBlock]

# --------------------------------------------------------------------------- request


@dataclass(slots=True)
class Message:
    role: Literal["user", "assistant"]
    content: list[Block]


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    input_schema: dict = field(default_factory=lambda: {"type": "object", "properties": {}})
    cache_control: dict | None = None
    # Format-specific extras that only make sense if the upstream speaks the same
    # format (e.g. Anthropic `eager_input_streaming`, OpenAI `strict`).
    extra: dict = field(default_factory=dict)


@dataclass(slots=True)
class ToolChoice:
    type: Literal["auto", "any", "none", "tool"] = "auto"
    name: str | None = None  # with type == "tool"
    disable_parallel_tool_use: bool = False


@dataclass(slots=True)
class Reasoning:
    """Requested reasoning. `effort` is low/medium/high (OpenAI reasoning_effort,
    Anthropic output_config.effort); `budget_tokens` is Anthropic's thinking budget.
    Codecs map one to the other when the upstream only knows one."""

    enabled: bool = True
    effort: str | None = None
    budget_tokens: int | None = None
    summary: str | None = None  # Responses API reasoning.summary


@dataclass(slots=True)
class Request:
    model: str
    messages: list[Message]
    system: list[TextBlock] = field(default_factory=list)
    tools: list[Tool] | None = None  # None = not sent; [] = sent empty (never inject tools)
    tool_choice: ToolChoice | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    stream: bool = False
    stream_include_usage: bool = False  # client asked for usage in the stream (OpenAI stream_options)
    reasoning: Reasoning | None = None
    metadata: dict | None = None
    response_format: dict | None = None  # JSON schema / json_object request, OpenAI shape
    # Unknown top-level fields of the client's format, passed on only when the
    # upstream speaks the same format.
    extra: dict = field(default_factory=dict)
    source_format: str | None = None


# --------------------------------------------------------------------------- response

StopReason = Literal["end_turn", "max_tokens", "tool_use", "stop_sequence", "refusal", "pause_turn", "error"]


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float | None = None  # upstream-reported cost in USD (OpenRouter), if any
    estimated: bool = False


@dataclass(slots=True)
class Response:
    id: str
    model: str
    content: list[Block]
    stop_reason: StopReason | None = "end_turn"
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)


# --------------------------------------------------------------------------- stream events
# The canonical stream follows Anthropic's event grammar:
#   MessageStart, (BlockStart, BlockDelta*, BlockStop)*, MessageDelta, MessageStop
# with Ping allowed anywhere and StreamError ending the stream early.


@dataclass(slots=True)
class MessageStart:
    id: str
    model: str
    usage: Usage = field(default_factory=Usage)


@dataclass(slots=True)
class BlockStart:
    index: int
    block: Block  # TextBlock(""), ToolUseBlock(id, name, {}), ThinkingBlock(""), RedactedThinkingBlock


@dataclass(slots=True)
class BlockDelta:
    index: int
    kind: Literal["text", "json", "thinking", "signature"]
    value: str


@dataclass(slots=True)
class BlockStop:
    index: int


@dataclass(slots=True)
class MessageDelta:
    stop_reason: StopReason | None
    stop_sequence: str | None = None
    usage: Usage | None = None  # cumulative usage as far as known


@dataclass(slots=True)
class MessageStop:
    pass


@dataclass(slots=True)
class Ping:
    pass


@dataclass(slots=True)
class StreamError:
    type: str  # canonical error type, see errors.ERROR_TYPES
    message: str
    status: int = 500


Event = Union[MessageStart, BlockStart, BlockDelta, BlockStop, MessageDelta, MessageStop, Ping, StreamError]


def add_usage(a: Usage, b: Usage) -> Usage:
    """Token counts of two attempts summed (an estimate: the cost is priced separately)."""
    return Usage(input_tokens=a.input_tokens + b.input_tokens,
                 output_tokens=a.output_tokens + b.output_tokens,
                 cache_read_tokens=a.cache_read_tokens + b.cache_read_tokens,
                 cache_write_tokens=a.cache_write_tokens + b.cache_write_tokens,
                 reasoning_tokens=a.reasoning_tokens + b.reasoning_tokens, estimated=True)


def merge_usage(into: Usage, update: Usage | None) -> Usage:
    """Take every non-zero field of `update` (streams report usage piecemeal)."""
    if update is None:
        return into
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                 "reasoning_tokens"):
        value = getattr(update, name)
        if value:
            setattr(into, name, value)
    if update.cost is not None:
        into.cost = update.cost
    return into
