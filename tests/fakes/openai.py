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


# Largest completion budget per model family (platform.openai.com/docs/models: "Max output tokens").
OUTPUT_LIMITS = {"gpt-4o": 16384, "gpt-4o-mini": 16384, "gpt-4.1": 32768, "gpt-4-turbo": 4096,
                 "gpt-3.5-turbo": 4096, "o1": 100000, "o3": 100000, "o4-mini": 100000, "gpt-5": 128000}
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
CHAT_ROLES = ("system", "developer", "user", "assistant", "tool", "function")


def output_limit(model: str) -> int | None:
    best = max((p for p in OUTPUT_LIMITS if model.startswith(p)), key=len, default=None)
    return OUTPUT_LIMITS[best] if best else None


def invalid(message: str, param: str | None = None, code: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                        "code": code}}, status=400)


def check_chat_body(body: dict) -> web.Response | None:
    """The chat-completions rules a gateway can get wrong by translating (see tests/fakes/README.md)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return invalid("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return invalid("[] is too short - 'messages'" if messages == [] else
                       "Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    pending: list[str] = []  # tool_call ids still waiting for their tool message
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in CHAT_ROLES:
            return invalid(f"Invalid value: '{(m or {}).get('role')}'. Supported values are: 'system', "
                           f"'assistant', 'user', 'function', 'tool', and 'developer'.", f"messages[{i}].role",
                           "invalid_value")
        role = m["role"]
        if role == "tool":
            if m.get("tool_call_id") not in pending:
                return invalid("Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                               "message with 'tool_calls'.", f"messages.[{i}].role")
            pending.remove(m["tool_call_id"])
            continue
        if pending:
            return invalid("An assistant message with 'tool_calls' must be followed by tool messages responding "
                           "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                           + ", ".join(pending), f"messages.[{i}].role")
        if role == "assistant" and m.get("tool_calls"):
            pending = [c.get("id") for c in m["tool_calls"] if isinstance(c, dict)]
    model = body["model"].partition(":")[0]
    if model.startswith(REASONING_PREFIXES) and body.get("max_tokens") is not None:
        return invalid("Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                       "'max_completion_tokens' instead.", "max_tokens", "unsupported_parameter")
    asked = body.get("max_completion_tokens", body.get("max_tokens"))
    limit = output_limit(model)
    if isinstance(asked, int) and limit and asked > limit:
        key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        return invalid(f"{key} is too large: {asked}. This model supports at most {limit} completion tokens, "
                       f"whereas you provided {asked}.", key, "invalid_value")
    if body.get("stream_options") is not None and not body.get("stream"):
        return invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                       "stream_options", "invalid_value")
    return None


def tool_call_deltas(calls: list[dict], interleave: bool = False, step: int = 7) -> list[dict]:
    """`delta` objects streaming `calls`: a head (id, name) then argument fragments of `step`
    characters. With `interleave` the fragments of parallel calls alternate (0, 1, 0, 1 ...),
    as some OpenAI-compatible servers send them; OpenAI itself sends one call after another."""
    heads, frags = [], []
    for i, call in enumerate(calls):
        heads.append({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                      "function": {"name": call["function"]["name"], "arguments": ""}}]})
        args = call["function"]["arguments"]
        frags.append([{"tool_calls": [{"index": i, "function": {"arguments": args[j:j + step]}}]}
                      for j in range(0, len(args), step)])
    if not interleave:
        return [d for head, parts in zip(heads, frags) for d in [head] + parts]
    out = list(heads)
    for k in range(max((len(f) for f in frags), default=0)):
        out += [parts[k] for parts in frags if k < len(parts)]
    return out


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

    def check_auth(self, rec) -> web.Response | None:
        """`Authorization: Bearer <key>` (platform.openai.com/docs/api-reference/authentication)."""
        auth = rec.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return web.json_response({"error": {
                "message": "You didn't provide an API key. You need to provide your API key in an Authorization "
                           "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "type": "invalid_request_error", "param": None, "code": None}}, status=401)
        return None

    def check_body(self, body: dict) -> web.Response | None:
        return check_chat_body(body)

    async def prelude(self, request: web.Request, context_error=None, check=None):
        """Record the request, check it like the real API and apply the shared failure
        behaviours: returns (body, behaviour), or the error response to send instead."""
        rec = await self.record(request)
        body = rec.body
        if not isinstance(body, dict):
            return web.json_response(openai_error_body(400), status=400)
        refused = self.check_auth(rec) or (check or self.check_body)(body)
        if refused is not None:
            self.rejected.append(refused.text)
            return refused
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
        chunks += [chunk(d) for d in tool_call_deltas(calls, interleave="interleave" in behaviour.flags)]
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
