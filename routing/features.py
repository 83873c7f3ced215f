"""What routing rules can see of a request, read from the client's body and headers
without decoding it. Pure: no Django, no I/O.

Cheap things are read at once (a few dict lookups); anything that walks the
messages (images, system text, last user text, side-call detection) is computed
on first use, so a route without rules pays for none of it. Prompt size is the
raw body length / 4 when the raw body is given (a 125 KB body costs nothing),
else the length of the serialised messages, system and tools / 4.

Formats: openai_chat, anthropic_messages, openai_responses, ollama (native /api/chat).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import orjson

CLIENTS = ("goose", "claude-code", "codex", "opencode", "aider", "other")
EFFORTS = ("none", "low", "medium", "high")
# In priority order when a client sends more than one (opencode sends two).
SESSION_HEADERS = (b"agent-session-id", b"x-claude-code-session-id", b"session-id", b"x-session-id")

# Side calls without tools are recognised by what they ask for: session titles
# (Claude Code, opencode), summaries (aider's history summariser) and Goose's
# "description in four words or less" session naming.
SIDE_CALL_SYSTEM = re.compile(r"(?i)\btitle\b|\bsummar(?:y|ies|ise|ize)\b|\bwords or (?:less|fewer)\b")
SIDE_CALL_MAX_TOKENS = 1024
SIDE_CALL_MAX_SYSTEM_CHARS = 8000  # an agent's main system prompt is longer than any side call's

_NOT_YET = object()


class RequestFeatures:
    """Everything a rule can match on. Build it with extract_features()."""

    __slots__ = ("fmt", "body", "raw_length", "tools", "max_output_tokens", "reasoning_effort", "structured_output",
                 "client", "session_id", "_prompt_tokens", "_has_images", "_system_text", "_last_user_text",
                 "_side_call")

    def __init__(self, fmt: str, body: dict, *, tools: int | None, max_output_tokens: int | None,
                 reasoning_effort: str, structured_output: bool, client: str, session_id: str,
                 raw_length: int | None = None) -> None:
        self.fmt = fmt
        self.body = body
        self.raw_length = raw_length
        self.tools = tools  # None: the request has no `tools` field; 0: an empty list
        self.max_output_tokens = max_output_tokens
        self.reasoning_effort = reasoning_effort  # one of EFFORTS; "none" also when not asked for
        self.structured_output = structured_output  # a JSON schema / JSON object answer was requested
        self.client = client  # one of CLIENTS
        self.session_id = session_id  # "" when the client sent none
        self._prompt_tokens = _NOT_YET if raw_length is None else max(1, raw_length // 4)
        self._has_images = _NOT_YET
        self._system_text = _NOT_YET
        self._last_user_text = _NOT_YET
        self._side_call = _NOT_YET

    @property
    def tool_count(self) -> int:
        return self.tools or 0

    @property
    def prompt_tokens(self) -> int:
        """Estimate: ~4 bytes a token (the same rule the usage estimate uses)."""
        if self._prompt_tokens is _NOT_YET:
            self._prompt_tokens = max(1, len(orjson.dumps(_prompt_parts(self.fmt, self.body))) // 4)
        return self._prompt_tokens

    @property
    def has_images(self) -> bool:
        if self._has_images is _NOT_YET:
            self._has_images = _has_images(self.fmt, self.body)
        return self._has_images

    @property
    def system_text(self) -> str:
        if self._system_text is _NOT_YET:
            self._system_text = _system_text(self.fmt, self.body)
        return self._system_text

    @property
    def last_user_text(self) -> str:
        """Text of the last user message that has text (tool results are not what the user asked)."""
        if self._last_user_text is _NOT_YET:
            self._last_user_text = _last_user_text(self.fmt, self.body)
        return self._last_user_text

    @property
    def side_call(self) -> bool:
        """A title/summary-like call an agent makes beside its main loop. Precisely:
        the request offers no tools (no `tools` field or an empty list) AND at least
        one of: max output tokens set and <= 1024; a structured (JSON schema / JSON
        object) answer requested; a system prompt of at most 8,000 characters that
        asks for a title, a summary or "N words or less".

        Matches the real captures: Claude Code's title call (tools: [], json_schema
        output, max_tokens 32000), opencode's title call (no tools, "title
        generator"), Goose's session naming ("four words or less"), aider's history
        summary. Never matches a request with tools, nor aider's main calls (no tools
        but a long system prompt about editing code)."""
        if self._side_call is _NOT_YET:
            self._side_call = self._detect_side_call()
        return self._side_call

    def _detect_side_call(self) -> bool:
        if self.tools:
            return False
        if self.max_output_tokens is not None and self.max_output_tokens <= SIDE_CALL_MAX_TOKENS:
            return True
        if self.structured_output:
            return True
        system = self.system_text
        return 0 < len(system) <= SIDE_CALL_MAX_SYSTEM_CHARS and SIDE_CALL_SYSTEM.search(system) is not None

    def as_dict(self, *, texts: bool = False) -> dict:
        """For explanations and the route tester (computes the lazy parts)."""
        out = {"format": self.fmt, "client": self.client, "session_id": self.session_id, "tools": self.tools,
               "prompt_tokens": self.prompt_tokens, "has_images": self.has_images,
               "reasoning_effort": self.reasoning_effort, "max_output_tokens": self.max_output_tokens,
               "structured_output": self.structured_output, "side_call": self.side_call}
        if texts:
            out["system_text"] = _clip(self.system_text)
            out["last_user_text"] = _clip(self.last_user_text)
        return out


def extract_features(fmt: str, body: dict, headers: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]] = (),
                     *, raw: bytes | None = None) -> RequestFeatures:
    """`headers`: lower-case names (as ASGI gives them), a dict or the scope's list
    of pairs. `raw`: the request body as received, for a free size estimate."""
    if not isinstance(headers, Mapping):
        headers = {name.lower(): value for name, value in headers}
    tools = body.get("tools")
    return RequestFeatures(
        fmt, body,
        tools=len(tools) if isinstance(tools, list) else None,
        max_output_tokens=_max_output_tokens(fmt, body),
        reasoning_effort=_reasoning_effort(fmt, body),
        structured_output=_structured_output(fmt, body),
        client=detect_client(headers),
        session_id=session_id(headers),
        raw_length=None if raw is None else len(raw))


# ---------------------------------------------------------------------- headers

def session_id(headers: Mapping[bytes, bytes]) -> str:
    for name in SESSION_HEADERS:
        value = headers.get(name)
        if value:
            return value.decode("latin-1")[:200]
    return ""


def detect_client(headers: Mapping[bytes, bytes]) -> str:
    """From the headers each agent sends (see the captures in shared/agents/).
    aider 0.86 sends the OpenAI Python SDK's or LiteLLM's User-Agent and nothing of
    its own, so it is recognised only when a User-Agent, X-Title or Referer says
    "aider" (set one with aider's `--set-env`/extra headers); otherwise "other"."""
    if b"agent-session-id" in headers:
        return "goose"
    agent = headers.get(b"user-agent", b"").lower()
    if b"x-claude-code-session-id" in headers or headers.get(b"x-app") == b"cli" or agent.startswith(b"claude-cli"):
        return "claude-code"
    if headers.get(b"originator", b"").startswith(b"codex") or agent.startswith(b"codex") \
            or any(name.startswith(b"x-codex-") for name in headers):
        return "codex"
    if b"x-session-affinity" in headers or agent.startswith(b"opencode"):
        return "opencode"
    if b"aider" in agent or b"aider" in headers.get(b"x-title", b"").lower() \
            or b"aider" in headers.get(b"http-referer", b"").lower():
        return "aider"
    return "other"


# ---------------------------------------------------------------------- cheap body fields

def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _max_output_tokens(fmt: str, body: dict) -> int | None:
    if fmt == "openai_chat":
        value = _int(body.get("max_completion_tokens"))
        return value if value is not None else _int(body.get("max_tokens"))
    if fmt == "openai_responses":
        return _int(body.get("max_output_tokens"))
    if fmt == "ollama":
        options = body.get("options")
        value = _int(options.get("num_predict")) if isinstance(options, dict) else None
        return value if value is None or value >= 0 else None  # -1: unlimited
    return _int(body.get("max_tokens"))


_EFFORT_WORDS = {"none": "none", "minimal": "low", "low": "low", "medium": "medium", "high": "high",
                 "xhigh": "high", "max": "high"}


def _effort_word(value) -> str | None:
    return _EFFORT_WORDS.get(value.lower()) if isinstance(value, str) else None


def _reasoning_effort(fmt: str, body: dict) -> str:
    """low/medium/high as asked, "none" when reasoning is off or not asked for.
    Anthropic: thinking disabled → none; else output_config.effort; else a thinking
    budget (< 4,000 low, < 16,000 medium, more high); adaptive without an effort is
    high (Anthropic's default effort)."""
    if fmt == "openai_chat":
        return _effort_word(body.get("reasoning_effort")) or "none"
    if fmt == "openai_responses":
        reasoning = body.get("reasoning")
        return (_effort_word(reasoning.get("effort")) if isinstance(reasoning, dict) else None) or "none"
    if fmt == "ollama":
        think = body.get("think")
        if think is True:
            return "medium"
        return _effort_word(think) or "none"
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return "none"
    config = body.get("output_config")
    effort = _effort_word(config.get("effort")) if isinstance(config, dict) else None
    if effort:
        return effort
    if kind == "enabled":
        budget = _int(thinking.get("budget_tokens")) or 0
        return "low" if budget < 4000 else "medium" if budget < 16000 else "high"
    if kind == "adaptive":
        return "high"
    return "none"


def _structured_output(fmt: str, body: dict) -> bool:
    if fmt == "openai_chat":
        fmt_ = body.get("response_format")
        return isinstance(fmt_, dict) and fmt_.get("type") in ("json_schema", "json_object")
    if fmt == "openai_responses":
        text = body.get("text")
        fmt_ = text.get("format") if isinstance(text, dict) else None
        return isinstance(fmt_, dict) and fmt_.get("type") in ("json_schema", "json_object")
    if fmt == "ollama":
        return body.get("format") not in (None, "")
    config = body.get("output_config")
    return isinstance(config, dict) and isinstance(config.get("format"), dict)


# ---------------------------------------------------------------------- walks (lazy)

def _prompt_parts(fmt: str, body: dict) -> list:
    if fmt == "openai_responses":
        return [body.get("instructions"), body.get("input"), body.get("tools")]
    return [body.get("system"), body.get("messages"), body.get("tools")]


def _messages(fmt: str, body: dict) -> list:
    if fmt == "openai_responses":
        items = body.get("input")
        if isinstance(items, str):
            return [{"role": "user", "content": items}]
        return items if isinstance(items, list) else []
    messages = body.get("messages")
    return messages if isinstance(messages, list) else []


_IMAGE_TYPES = frozenset(("image", "image_url", "input_image"))


def _has_images(fmt: str, body: dict) -> bool:
    for message in _messages(fmt, body):
        if not isinstance(message, dict):
            continue
        if fmt == "ollama" and message.get("images"):
            return True
        content = message.get("content")
        if isinstance(content, list) and _blocks_have_image(content):
            return True
    return False


def _blocks_have_image(blocks: list) -> bool:
    for block in blocks:
        if isinstance(block, dict):
            if block.get("type") in _IMAGE_TYPES:
                return True
            inner = block.get("content")  # Anthropic tool_result blocks can carry images
            if isinstance(inner, list) and _blocks_have_image(inner):
                return True
    return False


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [block.get("text") for block in content
                 if isinstance(block, dict) and block.get("type") in ("text", "input_text", None)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def _system_text(fmt: str, body: dict) -> str:
    parts = []
    if fmt == "anthropic_messages":
        parts.append(_text_of(body.get("system")))
    elif fmt == "openai_responses":
        instructions = body.get("instructions")
        if isinstance(instructions, str):
            parts.append(instructions)
    for message in _messages(fmt, body):
        if isinstance(message, dict) and message.get("role") in ("system", "developer"):
            parts.append(_text_of(message.get("content")))
    return "\n".join(p for p in parts if p)


def _last_user_text(fmt: str, body: dict) -> str:
    for message in reversed(_messages(fmt, body)):
        if isinstance(message, dict) and message.get("role") == "user":
            text = _text_of(message.get("content"))
            if text:
                return text
    return ""


def _clip(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"
