"""Fake Anthropic API: POST /v1/messages (stream and not), POST /v1/messages/count_tokens, GET /v1/models.

Byte layout follows the public API reference and real captures: SSE events
`event: NAME\\ndata: {compact json}\\n\\n` in the order message_start,
content_block_start, ping, content_block_delta*, content_block_stop, (next
block ...), message_delta (stop_reason + cumulative `usage.output_tokens`),
message_stop. Error bodies are `{"type": "error", "error": {"type", "message"},
"request_id"}` with Anthropic's statuses (529 overloaded_error, 429
rate_limit_error + retry-after, ...).

Headers are checked like the real API: `x-api-key` missing -> 401
authentication_error, `anthropic-version` missing -> 400. A few body rules the
real API enforces are checked too (max_tokens required, thinking budget >= 1024
and < max_tokens, temperature only 1 with thinking), so a gateway that encodes
an invalid request fails here as it would upstream.

Behaviour via the model name, as in base.py, plus:
    mock:thinking            a thinking block (thinking_delta chunks + signature_delta) before the answer
    mock:mid_error           an `event: error` overloaded_error after a few deltas, then the stream ends
    mock:cache_write=200     report that many prompt tokens written to the cache
    mock:context_length      400 "prompt is too long: 250000 tokens > 200000 maximum"
    mock:length              stop_reason max_tokens
    mock:cached=100          report that many prompt tokens read from the cache

Prompt caching, faithfully (without the two flags above): the prompt is read as the API
does, tools -> system -> messages, block by block. A block carrying `cache_control` is a
breakpoint; a request reads the longest prefix ending at a breakpoint, or at most 20 blocks
before one, that an earlier request wrote (and that has not expired: 5m or 1h, refreshed
on every read), and writes the prefix up to its last breakpoint when that is at least the
model's minimum cacheable length. `cache_read_input_tokens` / `cache_creation_input_tokens`
report those lengths and `input_tokens` only the rest. More than 4 breakpoints: a 400.
(`no_usage` omits usage from the non-stream body and from message_start; message_delta
keeps `output_tokens`, which the official SDKs require.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from aiohttp import web

from .base import Behaviour, FakeServer, agent_call

ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit "
                              "(https://docs.claude.com/en/api/rate-limits); see the response headers for current "
                              "usage. Please reduce the prompt length or the maximum tokens requested, or try again "
                              "later."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}

THINKING = "The user wants a short answer. Let me think about which tool fits best before replying."
_SIGNING_KEY = b"fake-anthropic-signing-key"


def sign(thinking: str) -> str:
    """The fake signs the thinking it sends (an HMAC, base64 like the real opaque value) and
    verifies it when a thinking block comes back: a gateway that alters either is caught."""
    digest = hmac.new(_SIGNING_KEY, thinking.encode(), hashlib.sha256).digest()
    return base64.b64encode(b"fakesig" + digest).decode()


THINKING_SENT = "".join(w + " " for w in THINKING.split(" "))  # what mock:thinking streams
SIGNATURE = sign(THINKING_SENT)
# Standard max output tokens (docs.claude.com "Models overview" / "Model comparison").
OUTPUT_LIMITS = {"claude-opus-4-5": 64000, "claude-opus-4-1": 32000, "claude-opus-4-2": 32000,
                 "claude-opus-4-0": 32000, "claude-sonnet-4-5": 64000, "claude-sonnet-4-0": 64000,
                 "claude-sonnet-4-2": 64000, "claude-haiku-4-5": 64000, "claude-3-7-sonnet": 64000,
                 "claude-3-5-haiku": 8192, "claude-3-5-sonnet": 8192, "claude-3-haiku": 4096,
                 "claude-3-opus": 4096}


def output_limit(model: str) -> int | None:
    best = max((p for p in OUTPUT_LIMITS if model.startswith(p)), key=len, default=None)
    return OUTPUT_LIMITS[best] if best else None


def _blocks(content) -> list:
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def check_turns(messages: list) -> str | None:
    """tool_use <-> tool_result pairing and thinking signatures, on the turns as the API sees
    them (consecutive same-role messages are combined into one turn, per the Messages API docs)."""
    turns: list[tuple[str, list, int]] = []  # role, blocks, index of the first message
    for i, m in enumerate(messages):
        blocks = _blocks(m.get("content"))
        if turns and turns[-1][0] == m.get("role"):
            turns[-1][1].extend(blocks)
        else:
            turns.append((m.get("role"), list(blocks), i))
    previous_uses: set = set()
    for n, (role, blocks, i) in enumerate(turns):
        results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        unexpected = [r for r in results if r not in previous_uses]
        if unexpected:
            return (f"messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{unexpected[0]}. Each `tool_result` block must have a corresponding `tool_use` "
                    f"block in the previous message.")
        missing = [u for u in previous_uses if u not in results]
        if missing:
            return (f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(sorted(missing))}. Each `tool_use` block must have a corresponding "
                    f"`tool_result` block in the next message.")
        previous_uses = set()
        if role == "assistant":
            for j, b in enumerate(blocks):
                if b.get("type") == "tool_use":
                    previous_uses.add(b.get("id"))
                elif b.get("type") == "thinking" and b.get("signature") != sign(b.get("thinking") or ""):
                    return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
    return None

MODELS = [
    ("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-24T00:00:00Z"),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
]


def anthropic_error_body(status: int, message: str | None = None, request_id: str = "req_fake0000") -> dict:
    type_, default = ERRORS.get(status, ("api_error" if status >= 500 else "invalid_request_error",
                                         "Upstream error %d." % status))
    return {"type": "error", "error": {"type": type_, "message": message or default}, "request_id": request_id}


def error_response(status: int, message: str | None = None, headers: dict | None = None) -> web.Response:
    return web.json_response(anthropic_error_body(status, message), status=status, headers=headers)


def event_bytes(name: str, obj: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


PING = b'event: ping\ndata: {"type": "ping"}\n\n'


def input_tokens_of(body: dict) -> int:
    """Deterministic tokenizer stand-in (~4 bytes a token) over what the model reads."""
    seen = [body.get("system"), body.get("messages"), body.get("tools")]
    return max(1, len(json.dumps(seen)) // 4)


MAX_BREAKPOINTS = 4
LOOKBACK = 20  # blocks the API checks before a breakpoint for an earlier write
_MINIMUMS = (("opus-4-5", 4096), ("haiku-4-5", 4096), ("3-5-haiku", 2048), ("3-haiku", 2048))


def minimum_tokens(model: str) -> int:
    return next((n for key, n in _MINIMUMS if key in model), 1024)


def prompt_blocks(body: dict) -> list[tuple[str, int, dict | None]]:
    """(canonical JSON without markers, tokens, cache_control) per block, in prompt order."""
    out = []

    def add(block) -> None:
        if not isinstance(block, dict):
            block = {"type": "text", "text": block}
        marker = block.get("cache_control")
        bare = json.dumps({k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True)
        out.append((bare, max(1, len(bare) // 4), marker))

    for tool in body.get("tools") or []:
        add(tool)
    system = body.get("system")
    for block in ([system] if isinstance(system, str) else system or []):
        add(block)
    for m in body.get("messages") or []:
        content = m.get("content")
        for block in [content] if isinstance(content, str) else content or []:
            add({"role": m.get("role"), **block} if isinstance(block, dict) else {"role": m.get("role"),
                                                                                    "text": block})
    return out


class PromptCache:
    """Prefix hash -> expiry (monotonic seconds): what earlier requests wrote."""

    def __init__(self) -> None:
        self.entries: dict[int, tuple[float, float]] = {}  # prefix hash -> (expiry, ttl)

    def clear(self) -> None:
        self.entries.clear()

    def usage(self, body: dict, blocks: list | None = None, model: str | None = None
              ) -> tuple[int, int, int] | None:
        """(read, written, total) tokens, or None when the request has no breakpoint. `blocks`
        and `model`: another API's prompt read the same way (the Bedrock fake's Converse)."""
        blocks = prompt_blocks(body) if blocks is None else blocks
        points = [i for i, b in enumerate(blocks) if b[2]]
        if not points:
            return None
        now = time.monotonic()
        prefix_hash, ends, hashes = 0, [], []
        for bare, tokens, _ in blocks:
            prefix_hash = hash((prefix_hash, bare))
            hashes.append(prefix_hash)
            ends.append((ends[-1] if ends else 0) + tokens)
        read_at = -1
        for point in points:
            for i in range(point, max(-1, point - LOOKBACK - 1), -1):
                entry = self.entries.get(hashes[i])
                if entry is not None and entry[0] > now:
                    if i > read_at:
                        read_at = i
                    self.entries[hashes[i]] = (now + entry[1], entry[1])  # refreshed on a hit
                    break
        read = ends[read_at] if read_at >= 0 else 0
        minimum = minimum_tokens(str(body.get("model") if model is None else model))
        written = 0
        for point in points:
            if point > read_at and ends[point] >= minimum:
                ttl = 3600.0 if (blocks[point][2] or {}).get("ttl") == "1h" else 300.0
                self.entries[hashes[point]] = (now + ttl, ttl)
                written = ends[point] - read
        return read, written, ends[-1]


class FakeAnthropic(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.prompt_cache = PromptCache()

    def reset(self) -> None:
        super().reset()
        self.prompt_cache.clear()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        app.router.add_get("/v1/models", self.models)

    # ------------------------------------------------------------------ checks

    def check_headers(self, rec) -> web.Response | None:
        if not rec.headers.get("x-api-key"):
            return error_response(401, "x-api-key header is required")
        if not rec.headers.get("anthropic-version"):
            return error_response(400, "anthropic-version: header is required")
        return None

    @staticmethod
    def check_body(body: dict, count_only: bool = False, betas: str = "") -> str | None:
        if not isinstance(body.get("model"), str):
            return "model: Field required"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: Field required"
        for i, m in enumerate(messages):
            # `role: "system"` mid-conversation exists behind the betas Claude Code sends
            # (2.1.197: mid-conversation-system; 2.1.332: mid-conversation-tool-changes).
            roles = ("user", "assistant", "system") if "mid-conversation-" in betas else ("user", "assistant")
            if not isinstance(m, dict) or m.get("role") not in roles:
                return f"messages.{i}.role: Input should be 'user' or 'assistant'"
            if m.get("content") in ("", []):
                return f"messages.{i}: all messages must have non-empty content"
        for i, t in enumerate(body.get("tools") or []):
            kind = t.get("type") if isinstance(t, dict) else None
            if isinstance(kind, str) and kind.startswith("web_search_"):
                if kind != "web_search_20250305" or t.get("name") != "web_search":
                    return f"tools.{i}: server tool type {kind!r} needs name 'web_search'"
            elif kind in (None, "custom") and not isinstance((t or {}).get("input_schema"), dict):
                return f"tools.{i}.custom.input_schema: Field required"
        problem = check_turns(messages)
        if problem:
            return problem
        if count_only:
            return None
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int):
            return "max_tokens: Field required"
        limit = output_limit(body["model"].partition(":")[0])
        if limit and max_tokens > limit:
            return (f"max_tokens: {max_tokens} > {limit}, which is the maximum allowed number of output tokens "
                    f"for {body['model']}")
        thinking = body.get("thinking") or {}
        if thinking.get("type") == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            if budget >= max_tokens:
                return "`max_tokens` must be greater than `thinking.budget_tokens`."
            if body.get("temperature") not in (None, 1):
                return "`temperature` may only be set to 1 when thinking is enabled or in interleaved thinking mode."
        return None

    # ------------------------------------------------------------------ endpoints

    async def models(self, request: web.Request) -> web.Response:
        rec = await self.record(request)
        bad = self.check_headers(rec)
        if bad is not None:
            return bad
        data = [{"type": "model", "id": i, "display_name": n, "created_at": c} for i, n, c in MODELS]
        return web.json_response({"data": data, "has_more": False, "first_id": data[0]["id"],
                                  "last_id": data[-1]["id"]})

    async def count_tokens(self, request: web.Request) -> web.Response:
        rec = await self.record(request)
        bad = self.check_headers(rec)
        if bad is not None:
            return bad
        body = rec.body
        if not isinstance(body, dict):
            return error_response(400, "request body must be a JSON object")
        problem = self.check_body(body, count_only=True, betas=rec.headers.get("anthropic-beta", ""))
        if problem:
            return error_response(400, problem)
        behaviour = Behaviour.parse(body.get("model", ""))
        failed = await self.maybe_fail(request, behaviour, anthropic_error_body)
        if failed is not None:
            return failed
        return web.json_response({"input_tokens": input_tokens_of(body)})

    def usage(self, body: dict, behaviour: Behaviour, output_tokens: int, cached=None) -> dict:
        if cached is not None and not (behaviour.cached or behaviour.flags.get("cache_write")):
            read, written, total = cached
            return {"input_tokens": max(0, total - read - written), "cache_creation_input_tokens": written,
                    "cache_read_input_tokens": read, "output_tokens": output_tokens, "service_tier": "standard"}
        return {"input_tokens": input_tokens_of(body),
                "cache_creation_input_tokens": int(behaviour.flags.get("cache_write") or 0),
                "cache_read_input_tokens": behaviour.cached, "output_tokens": output_tokens,
                "service_tier": "standard"}

    def tool_uses(self, body: dict, behaviour: Behaviour) -> list[dict]:
        tools = [t for t in (body.get("tools") or []) if "input_schema" in t]
        if "agent_turn" in behaviour.flags and tools:
            last = (body.get("messages") or [{}])[-1].get("content")
            answered = isinstance(last, list) and any(isinstance(b, dict) and b.get("type") == "tool_result"
                                                       for b in last)
            call = agent_call([t["name"] for t in tools], answered)
            return [] if call is None else [{"type": "tool_use", "id": "toolu_fakeagent01", "name": call[0],
                                             "input": call[1]}]
        if not (behaviour.tools or behaviour.parallel_tools) or not tools:
            return []
        uses = [{"type": "tool_use", "id": "toolu_fake0001", "name": tools[0]["name"],
                 "input": {"path": "src", "depth": 2}}]
        if behaviour.parallel_tools:
            uses.append({"type": "tool_use", "id": "toolu_fake0002", "name": tools[1 if len(tools) > 1 else 0]["name"],
                         "input": {"path": "README.md"}})
        return uses

    def web_search(self, body: dict, behaviour: Behaviour) -> list[dict]:
        """mock:web_search: the server web search ran (only when the request offered it)."""
        offered = any(isinstance(t, dict) and t.get("type") == "web_search_20250305" for t in body.get("tools") or [])
        if "web_search" not in behaviour.flags or not offered:
            return []
        return [{"type": "server_tool_use", "id": "srvtoolu_fake0001", "name": "web_search",
                 "input": {"query": "junction llm gateway"}},
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_fake0001",
                 "content": [{"type": "web_search_result", "url": "https://example.com/junction",
                              "title": "Junction", "encrypted_content": "EqgfCioIARgBIiQ3YTAwMjY1Mi1mZjM5",
                              "page_age": "November 30, 2026"}]}]

    async def messages(self, request: web.Request) -> web.StreamResponse:
        rec = await self.record(request)
        bad = self.check_headers(rec)
        if bad is not None:
            return bad
        body = rec.body
        if not isinstance(body, dict):
            return error_response(400, "request body must be a JSON object")
        problem = self.check_body(body, betas=rec.headers.get("anthropic-beta", ""))
        if problem:
            self.rejected.append(problem)
            return error_response(400, problem)
        behaviour = Behaviour.parse(body.get("model", ""))
        if "context_length" in behaviour.flags:
            return error_response(400, "prompt is too long: 250000 tokens > 200000 maximum")
        markers = sum(1 for b in prompt_blocks(body) if b[2])
        if markers > MAX_BREAKPOINTS:
            problem = f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {markers}."
            self.rejected.append(problem)
            return error_response(400, problem)
        request["stream"] = bool(body.get("stream"))
        failed = await self.maybe_fail(request, behaviour, anthropic_error_body)
        if failed is not None:
            if failed.status == 429 and "retry-after" not in failed.headers:
                failed.headers["retry-after"] = "1"  # Anthropic always sends one with a 429
            return failed
        cached = self.prompt_cache.usage(body)  # (read, written, total) or None: no breakpoint

        uses = self.tool_uses(body, behaviour)
        words = [] if uses else behaviour.words()
        searched = self.web_search(body, behaviour)
        thinking = "thinking" in behaviour.flags
        thinking_words = [w + " " for w in THINKING.split(" ")] if thinking else []
        output_tokens = (len(words) + len(thinking_words)
                         + sum(len(json.dumps(u["input"])) // 4 for u in uses))
        stop = "tool_use" if uses else ("max_tokens" if "length" in behaviour.flags else "end_turn")
        ident = "msg_fake%016d" % len(self.requests)
        headers = {"request-id": "req_fake%016d" % len(self.requests), "anthropic-organization-id": "fake-org"}

        if not body.get("stream"):
            content: list[dict] = []
            if thinking:
                content.append({"type": "thinking", "thinking": "".join(thinking_words),
                                "signature": sign("".join(thinking_words))})
            content.extend(searched)
            if words:
                content.append({"type": "text", "text": "".join(words)})
            content.extend(uses)
            out = {"id": ident, "type": "message", "role": "assistant", "model": behaviour.model,
                   "content": content, "stop_reason": stop, "stop_sequence": None}
            if not behaviour.no_usage:
                out["usage"] = self.usage(body, behaviour, output_tokens, cached)
                if searched:
                    out["usage"]["server_tool_use"] = {"web_search_requests": 1}
            return web.json_response(out, headers=headers)

        message = {"id": ident, "type": "message", "role": "assistant", "model": behaviour.model, "content": [],
                   "stop_reason": None, "stop_sequence": None}
        if not behaviour.no_usage:
            message["usage"] = self.usage(body, behaviour, 1, cached)
        chunks = [event_bytes("message_start", {"type": "message_start", "message": message})]
        index = 0
        pinged = False

        def start(block: dict) -> None:
            nonlocal pinged
            chunks.append(event_bytes("content_block_start",
                                      {"type": "content_block_start", "index": index, "content_block": block}))
            if not pinged:
                chunks.append(PING)
                pinged = True

        def delta(d: dict) -> None:
            chunks.append(event_bytes("content_block_delta", {"type": "content_block_delta", "index": index,
                                                              "delta": d}))

        def stop_block() -> None:
            chunks.append(event_bytes("content_block_stop", {"type": "content_block_stop", "index": index}))

        if thinking:
            start({"type": "thinking", "thinking": "", "signature": ""})
            for w in thinking_words:
                delta({"type": "thinking_delta", "thinking": w})
            delta({"type": "signature_delta", "signature": sign("".join(thinking_words))})
            stop_block()
            index += 1
        for block in searched:
            if block["type"] == "server_tool_use":  # input streamed as JSON deltas, as the API does
                start(dict(block, input={}))
                delta({"type": "input_json_delta", "partial_json": ""})
                delta({"type": "input_json_delta", "partial_json": json.dumps(block["input"])})
            else:
                start(block)
            stop_block()
            index += 1
        if words:
            start({"type": "text", "text": ""})
            for w in words:
                delta({"type": "text_delta", "text": w})
            stop_block()
            index += 1
        for use in uses:
            start({"type": "tool_use", "id": use["id"], "name": use["name"], "input": {}})
            args = json.dumps(use["input"], separators=(",", ":"))
            delta({"type": "input_json_delta", "partial_json": ""})  # the API sends an empty one first
            for j in range(0, len(args), 8):
                delta({"type": "input_json_delta", "partial_json": args[j:j + 8]})
            stop_block()
            index += 1

        if "mid_error" in behaviour.flags:
            # message_start + first block start + ping + 3 deltas, then the error event
            cut = 3 + 3
            chunks = chunks[:cut] + [event_bytes("error", {"type": "error", "error": {
                "type": "overloaded_error", "message": "Overloaded"}})]
            return await self.stream(request, chunks, behaviour, headers=headers)

        chunks.append(event_bytes("message_delta", {"type": "message_delta",
                                                    "delta": {"stop_reason": stop, "stop_sequence": None},
                                                    "usage": {"output_tokens": output_tokens}}))
        chunks.append(event_bytes("message_stop", {"type": "message_stop"}))
        return await self.stream(request, chunks, behaviour, headers=headers)


if __name__ == "__main__":  # manual use: python -m tests.fakes.anthropic PORT
    import sys
    import threading
    server = FakeAnthropic()
    server.port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server.start()
    print(server.url, flush=True)
    threading.Event().wait()
