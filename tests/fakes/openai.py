"""Fake OpenAI API: /v1/chat/completions (stream and not), /v1/embeddings, /v1/models.

Byte layout follows the public API reference: SSE `data: {json}\\n\\n` chunks of
object `chat.completion.chunk`, a role-only first delta, a final chunk carrying
`finish_reason`, with `stream_options.include_usage` every chunk carries
`"usage": null` and one extra chunk with `"choices": []` and the usage, then
`data: [DONE]`. Error bodies are `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import json
import time

from aiohttp import web

from .base import Behaviour, FakeServer, agent_call, prompt_tokens_of

ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 1s."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def openai_error_body(status: int) -> dict:
    type_, code, message = ERRORS.get(status, ("server_error", None, "Upstream error %d." % status))
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def context_length_error() -> dict:
    return {"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages "
                                 "resulted in 9000 tokens. Please reduce the length of the messages.",
                      "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}


def chunk_bytes(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class FakeOpenAI(FakeServer):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)

    async def models(self, request: web.Request) -> web.Response:
        await self.record(request)
        return web.json_response({"object": "list", "data": [
            {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
            {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
        ]})

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        rec = await self.record(request)
        body = rec.body or {}
        behaviour = Behaviour.parse(body.get("model", ""))
        failed = await self.maybe_fail(request, behaviour, openai_error_body)
        if failed is not None:
            return failed
        inputs = body.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        data = [{"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2, -0.3]} for i in range(len(inputs))]
        tokens = sum(max(1, len(str(x)) // 4) for x in inputs)
        return web.json_response({"object": "list", "data": data, "model": behaviour.model,
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def usage(self, body: dict, behaviour: Behaviour, completion_tokens: int) -> dict:
        prompt = prompt_tokens_of(body) + behaviour.cached
        return {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                "total_tokens": prompt + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": behaviour.cached, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}

    def tool_calls(self, body: dict, behaviour: Behaviour) -> list[dict]:
        tools = body.get("tools") or []
        if "agent_turn" in behaviour.flags and tools:
            answered = (body.get("messages") or [{}])[-1].get("role") == "tool"
            call = agent_call([t["function"]["name"] for t in tools], answered)
            return [] if call is None else [{"id": "call_fakeagent01", "type": "function",
                                             "function": {"name": call[0], "arguments": json.dumps(call[1])}}]
        if not (behaviour.tools or behaviour.parallel_tools) or not tools:
            return []
        name = tools[0]["function"]["name"]
        calls = [{"id": "call_fake0001", "type": "function",
                  "function": {"name": name, "arguments": json.dumps({"path": "src", "depth": 2})}}]
        if behaviour.parallel_tools:
            second = tools[1 if len(tools) > 1 else 0]["function"]["name"]
            calls.append({"id": "call_fake0002", "type": "function",
                          "function": {"name": second, "arguments": json.dumps({"path": "README.md"})}})
        return calls

    async def prelude(self, request: web.Request, context_error=None):
        """Record the request and apply the shared failure behaviours: returns
        (body, behaviour), or the error response to send instead."""
        rec = await self.record(request)
        body = rec.body
        if not isinstance(body, dict):
            return web.json_response(openai_error_body(400), status=400)
        behaviour = Behaviour.parse(body.get("model", ""))
        if "context_length" in behaviour.flags:
            return web.json_response((context_error or context_length_error)(), status=400)
        request["stream"] = bool(body.get("stream"))
        failed = await self.maybe_fail(request, behaviour, openai_error_body)
        return failed if failed is not None else (body, behaviour)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        started = await self.prelude(request)
        if isinstance(started, web.StreamResponse):
            return started
        body, behaviour = started
        calls = self.tool_calls(body, behaviour)
        words = [] if calls else behaviour.words()
        completion_tokens = len(words) + sum(len(c["function"]["arguments"]) // 4 for c in calls)
        finish = "tool_calls" if calls else ("length" if "length" in behaviour.flags else "stop")
        ident, created = "chatcmpl-fake%08d" % len(self.requests), int(time.time())
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(words) if words else None, "refusal": None,
                       "annotations": []}
            if calls:
                message["tool_calls"] = calls
            out = {"id": ident, "object": "chat.completion", "created": created, "model": behaviour.model,
                   "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                   "service_tier": "default", "system_fingerprint": "fp_fake"}
            if not behaviour.no_usage:
                out["usage"] = self.usage(body, behaviour, completion_tokens)
            return web.json_response(out)

        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and not behaviour.no_usage
        base = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": behaviour.model,
                "service_tier": "default", "system_fingerprint": "fp_fake"}

        def chunk(delta: dict, finish_reason=None) -> bytes:
            obj = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])
            if include_usage:
                obj["usage"] = None
            return chunk_bytes(obj)

        chunks = [chunk({"role": "assistant", "content": "" if not calls else None, "refusal": None})]
        chunks += [chunk({"content": w}) for w in words]
        for i, call in enumerate(calls):
            args = call["function"]["arguments"]
            chunks.append(chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                                 "function": {"name": call["function"]["name"], "arguments": ""}}]}))
            for j in range(0, len(args), 7):
                chunks.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args[j:j + 7]}}]}))
        chunks.append(chunk({}, finish))
        if include_usage:
            chunks.append(chunk_bytes(dict(base, choices=[], usage=self.usage(body, behaviour, completion_tokens))))
        chunks.append(b"data: [DONE]\n\n")
        return await self.stream(request, chunks, behaviour)


if __name__ == "__main__":  # manual use: python -m tests.fakes.openai PORT
    import sys
    import threading
    server = FakeOpenAI()
    server.port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server.start()
    print(server.url, flush=True)
    threading.Event().wait()
