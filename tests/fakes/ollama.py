"""Fake Ollama server: POST /api/chat (NDJSON stream and single object),
GET /api/tags, POST /api/embed, GET /api/version, GET / ("Ollama is running").

Behaviours use the grammar of tests/fakes/base.py, but after a '#' instead of
':' because Ollama model names carry ':' tags:

    qwen2.5-coder:14b                         normal answer
    qwen2.5-coder:14b#status=500              {"error": "..."} with that status
    qwen2.5-coder:14b#tools,thinking          thinking deltas, then a tool call to the first tool
    qwen2.5-coder:14b#drop_after=3            abort the connection after 3 NDJSON lines
    qwen2.5-coder:14b#mid_error=2             an {"error": ...} line after 2 content lines
    qwen2.5-coder:14b#length                  done_reason "length"
    ...#hang  ...#garbage  ...#no_usage  ...#tokens=N  ...#first_delay=0.5  ...#token_delay=0.01
(in a URL or shell, '#' needs quoting/escaping; in a JSON body it is just a character).

Byte layout follows the Ollama API reference: every stream line is one compact
JSON object + "\\n" with model, created_at (RFC 3339, UTC, "Z"), message
{role, content[, thinking][, tool_calls]} and done false; the last line has
done true, done_reason, the counters and durations in nanoseconds. Tool calls
come complete in one line, arguments as an object, without ids. `stream`
defaults to true.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

from aiohttp import web

from .base import Behaviour, FakeServer, agent_call, prompt_tokens_of

ERRORS = {
    400: "invalid request",
    404: None,  # model-specific message
    429: "too many requests",
    500: "llama runner process has terminated: exit status 2",
    502: "bad gateway",
    503: "server busy, please try again.  maximum pending requests exceeded",
}

MODELS = [
    ("qwen2.5-coder:14b", "qwen2", "14.8B", "Q4_K_M", 8988124069),
    ("qwen3-coder:30b", "qwen3moe", "30.5B", "Q4_K_M", 18556700761),
    ("llama3.2:latest", "llama", "3.2B", "Q4_K_M", 2019393189),
]


def parse_behaviour(model: str) -> Behaviour:
    """'name:tag#spec' -> Behaviour (the model echoed back is the full name)."""
    _, _, spec = (model or "").partition("#")
    b = Behaviour.parse("mock:" + spec)
    b.model = model
    return b


def ollama_error_body(status: int, model: str = "") -> dict:
    message = ERRORS.get(status)
    if message is None:
        message = 'model "%s" not found, try pulling it first' % model.partition("#")[0] if status == 404 \
            else "upstream error %d" % status
    return {"error": message}


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def line(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


class FakeOllama(FakeServer):
    version = "0.12.6"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/chat", self.chat)
        app.router.add_get("/api/tags", self.tags)
        app.router.add_post("/api/embed", self.embed)
        app.router.add_get("/api/version", self.version_info)
        app.router.add_get("/", self.root)

    async def root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def version_info(self, request: web.Request) -> web.Response:
        await self.record(request)
        return web.json_response({"version": self.version})

    async def tags(self, request: web.Request) -> web.Response:
        await self.record(request)
        models = [{"name": name, "model": name, "modified_at": "2025-05-01T10:00:00.000000000Z", "size": size,
                   "digest": hashlib.sha256(name.encode()).hexdigest(),
                   "details": {"parent_model": "", "format": "gguf", "family": family, "families": [family],
                               "parameter_size": params, "quantization_level": quant}}
                  for name, family, params, quant, size in MODELS]
        return web.json_response({"models": models})

    async def embed(self, request: web.Request) -> web.StreamResponse:
        rec = await self.record(request)
        body = rec.body or {}
        behaviour = parse_behaviour(body.get("model", ""))
        failed = await self.maybe_fail(request, behaviour, lambda s: ollama_error_body(s, behaviour.model))
        if failed is not None:
            return failed
        inputs = body.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        return web.json_response({
            "model": behaviour.model,
            "embeddings": [[0.1 * (i + 1), 0.2, -0.3, 0.05] for i in range(len(inputs))],
            "total_duration": 14143917, "load_duration": 1019500,
            "prompt_eval_count": sum(max(1, len(str(x)) // 4) for x in inputs),
        })

    def tool_calls(self, body: dict, behaviour: Behaviour) -> list[dict]:
        tools = body.get("tools") or []
        if "agent_turn" in behaviour.flags and tools:
            answered = (body.get("messages") or [{}])[-1].get("role") == "tool"
            call = agent_call([t["function"]["name"] for t in tools], answered)
            return [] if call is None else [{"function": {"name": call[0], "arguments": call[1]}}]
        if not (behaviour.tools or behaviour.parallel_tools) or not tools:
            return []
        calls = [{"function": {"name": tools[0]["function"]["name"], "arguments": {"path": "src", "depth": 2}}}]
        if behaviour.parallel_tools:
            second = tools[1 if len(tools) > 1 else 0]["function"]["name"]
            calls.append({"function": {"name": second, "arguments": {"path": "README.md"}}})
        return calls

    async def chat(self, request: web.Request) -> web.StreamResponse:
        rec = await self.record(request)
        body = rec.body
        if not isinstance(body, dict):
            return web.json_response({"error": "invalid character 'x' looking for beginning of value"}, status=400)
        behaviour = parse_behaviour(body.get("model", ""))
        stream = body.get("stream", True) is not False  # Ollama streams by default
        request["stream"] = stream
        failed = await self.maybe_fail(request, behaviour, lambda s: ollama_error_body(s, behaviour.model))
        if failed is not None:
            return failed
        calls = self.tool_calls(body, behaviour)
        words = [] if calls else behaviour.words()
        thinking = ["Let me", " think", " about it."] if "thinking" in behaviour.flags else []
        eval_count = len(words) + len(thinking) + 8 * len(calls)
        done_reason = "length" if "length" in behaviour.flags else "stop"
        final = {"done": True, "done_reason": done_reason, "total_duration": 1234567890,
                 "load_duration": 1019500, "prompt_eval_count": prompt_tokens_of(body),
                 "prompt_eval_duration": 21000000, "eval_count": eval_count, "eval_duration": 210000000}
        if behaviour.no_usage:
            for key in ("prompt_eval_count", "eval_count"):
                final.pop(key)

        if not stream:
            message = {"role": "assistant", "content": "".join(words)}
            if thinking:
                message["thinking"] = "".join(thinking)
            if calls:
                message["tool_calls"] = calls
            return web.json_response({"model": behaviour.model, "created_at": now(), "message": message, **final})

        def chunk(message: dict, done: bool = False) -> bytes:
            return line({"model": behaviour.model, "created_at": now(),
                         "message": {"role": "assistant", **message}, "done": done})

        chunks = [chunk({"content": "", "thinking": t}) for t in thinking]
        chunks += [chunk({"content": w}) for w in words]
        if calls:
            chunks.append(chunk({"content": "", "tool_calls": calls}))
        if "mid_error" in behaviour.flags:
            at = int(behaviour.flags["mid_error"] or 1)
            chunks = chunks[:at] + [line({"error": "an error was encountered while running the model: "
                                                   "unexpected EOF"})]
        else:
            chunks.append(line({"model": behaviour.model, "created_at": now(),
                                "message": {"role": "assistant", "content": ""}, **final}))
        return await self.stream(request, chunks, behaviour, content_type="application/x-ndjson")


if __name__ == "__main__":  # manual use: python -m tests.fakes.ollama PORT
    import sys
    import threading
    server = FakeOllama()
    server.port = int(sys.argv[1]) if len(sys.argv) > 1 else 11434
    server.start()
    print(server.url, flush=True)
    threading.Event().wait()
