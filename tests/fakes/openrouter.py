"""Fake OpenRouter: POST /api/v1/chat/completions and GET /api/v1/models.

OpenAI's chat completions wire format (tests/fakes/openai.py) plus OpenRouter's
conventions, per its API docs:
- usage carries `cost` (USD credits) and `cost_details` when the request has
  `usage: {include: true}` (always, on today's OpenRouter);
- errors are `{"error": {"code": <http status>, "message", "metadata"}}`, e.g. 402
  for insufficient credits;
- a failure after the stream started is a chunk with `error` and a choice whose
  finish_reason is "error", after which the stream ends (no `[DONE]`);
- /models lists `context_length` and per-token `pricing` strings.

Behaviours as in base.py (on the part after ':'), plus:
    openai/gpt-4o:status=402    OpenRouter's insufficient-credits error
    openai/gpt-4o:mid_error     two content chunks, then the mid-stream error chunk
"""

from __future__ import annotations

import json
import time

from aiohttp import web

from .base import Behaviour
from .openai import FakeOpenAI, chunk_bytes

COST_PER_TOKEN = 0.00001  # what the fake "charges", so a test can tell it from a price-table estimate

MODELS = [
    {"id": "openai/gpt-4o", "name": "OpenAI: GPT-4o", "context_length": 128000,
     "pricing": {"prompt": "0.0000025", "completion": "0.00001", "input_cache_read": "0.00000125"}},
    {"id": "anthropic/claude-sonnet-4.5", "name": "Anthropic: Claude Sonnet 4.5", "context_length": 1000000,
     "pricing": {"prompt": "0.000003", "completion": "0.000015", "input_cache_read": "0.0000003",
                 "input_cache_write": "0.00000375"}},
    {"id": "openrouter/auto", "name": "Auto Router", "context_length": 2000000,
     "pricing": {"prompt": "-1", "completion": "-1"}},
]


def openrouter_error(status: int, message: str | None = None, metadata: dict | None = None) -> dict:
    defaults = {402: "Insufficient credits. Add more using https://openrouter.ai/settings/credits",
                429: "Rate limit exceeded: free-models-per-min.", 502: "Provider returned error",
                503: "No allowed providers are available for the selected model."}
    error = {"code": status, "message": message or defaults.get(status, "Upstream error %d" % status)}
    if metadata is not None:
        error["metadata"] = metadata
    return {"error": error}


class FakeOpenRouter(FakeOpenAI):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v1/chat/completions", self.openrouter_chat)
        app.router.add_get("/api/v1/models", self.list_models)

    async def list_models(self, request: web.Request) -> web.Response:
        await self.record(request)
        return web.json_response({"data": MODELS})

    def usage(self, body: dict, behaviour: Behaviour, completion_tokens: int) -> dict:
        usage = super().usage(body, behaviour, completion_tokens)
        if (body.get("usage") or {}).get("include"):
            usage["cost"] = round((usage["prompt_tokens"] + completion_tokens) * COST_PER_TOKEN, 8)
            usage["cost_details"] = {"upstream_inference_cost": None}
        return usage

    async def openrouter_chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        behaviour = Behaviour.parse(body.get("model", ""))
        if behaviour.status:
            await self.record(request)
            metadata = {"provider_name": "OpenAI", "raw": "upstream said no"} if behaviour.status >= 500 else None
            headers = {"retry-after": behaviour.retry_after} if behaviour.retry_after else {}
            return web.json_response(openrouter_error(behaviour.status, metadata=metadata),
                                     status=behaviour.status, headers=headers)
        if "mid_error" in behaviour.flags and body.get("stream"):
            await self.record(request)
            return await self.stream(request, self.mid_error_chunks(body), behaviour)
        return await self.chat(request)

    def mid_error_chunks(self, body: dict) -> list[bytes]:
        base = {"id": "gen-fake-%d" % len(self.requests), "object": "chat.completion.chunk",
                "created": int(time.time()), "model": body.get("model"), "provider": "OpenAI"}
        chunks = [chunk_bytes(dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": w},
                                                   "finish_reason": None}])) for w in ("Hello", " world")]
        chunks.append(chunk_bytes(dict(base, error={"code": "server_error",
                                                    "message": "Provider disconnected unexpectedly"},
                                       choices=[{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}])))
        return chunks
