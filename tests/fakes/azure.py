"""Fake Azure OpenAI resource: the deployments paths and the v1 paths.

    POST /openai/deployments/{deployment}/chat/completions?api-version=…
    POST /openai/deployments/{deployment}/embeddings?api-version=…
    POST /openai/v1/chat/completions   POST /openai/v1/responses   POST /openai/v1/embeddings

Checked like the real service: `api-key` must be the resource key (or
`Authorization: Bearer <Entra token>`, a JWT starting "eyJ"), else 401; the
deployments paths need a dated `api-version` (missing: 404 "Resource not found",
malformed: 400), the v1 paths take none (or "preview"/"latest"). On the
deployments paths the *deployment name* selects the behaviour (the grammar of
tests/fakes/base.py), so a test proves the gateway mapped model → deployment. Extra
behaviours:

    mock:content_filter      400 content_filter error with innererror.content_filter_result
                             (violence filtered at severity medium)
    mock:filtered_output     200 whose choice ends with finish_reason "content_filter"
"""

from __future__ import annotations

import re
import time

from aiohttp import web

from .base import Behaviour
from .openai_responses import FakeOpenAIResponses

API_KEY = "azure-resource-key-0001"
DATED = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")

UNAUTHORIZED = {"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API "
                                                   "endpoint. Make sure to provide a valid key for an active "
                                                   "subscription and use a correct regional API endpoint for your "
                                                   "resource."}}


def content_filter_error() -> dict:
    categories = {name: {"filtered": False, "severity": "safe"} for name in ("hate", "self_harm", "sexual")}
    categories["violence"] = {"filtered": True, "severity": "medium"}
    categories["jailbreak"] = {"filtered": False, "detected": False}
    return {"error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
                   "policy. Please modify your prompt and retry. To learn more about our content filtering "
                   "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
        "type": None, "param": "prompt", "code": "content_filter", "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": categories}}}


class FakeAzure(FakeOpenAIResponses):
    def __init__(self, api_key: str = API_KEY) -> None:
        super().__init__()
        self.api_key = api_key

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self.deployment_chat)
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self.deployment_embeddings)
        app.router.add_post("/openai/v1/chat/completions", self.v1(self.chat))
        app.router.add_post("/openai/v1/responses", self.v1(self.responses))
        app.router.add_post("/openai/v1/embeddings", self.v1(self.embeddings))

    async def record(self, request: web.Request):
        rec = await super().record(request)
        deployment = request.match_info.get("deployment")
        if deployment is not None and isinstance(rec.body, dict):
            # The deployment decides what answers; the body's model is ignored, as on Azure.
            rec.body = {**rec.body, "model": deployment}
        return rec

    # ------------------------------------------------------------------ checks

    def check_auth(self, rec):
        return None  # `api-key` or an Entra token, checked by denied() before any handler

    def denied(self, request: web.Request, v1: bool) -> web.Response | None:
        key = request.headers.get("api-key")
        bearer = request.headers.get("Authorization", "")
        if key != self.api_key and not (bearer.startswith("Bearer eyJ") and len(bearer) > 20):
            return web.json_response(UNAUTHORIZED, status=401)
        version = request.query.get("api-version")
        if v1:
            if version not in (None, "preview", "latest"):
                return web.json_response({"error": {"code": "BadRequest", "message": "API version not "
                                                    "supported"}}, status=400)
        elif version is None:
            return web.json_response({"error": {"code": "404", "message": "Resource not found"}}, status=404)
        elif not DATED.match(version):
            return web.json_response({"error": {"code": "BadRequest", "message": "API version not supported"}},
                                     status=400)
        return None

    def v1(self, handler):
        async def checked(request: web.Request) -> web.StreamResponse:
            denied = self.denied(request, v1=True)
            if denied is not None:
                await self.record(request)
                return denied
            return await handler(request)
        return checked

    # ------------------------------------------------------------------ deployments

    async def deployment_chat(self, request: web.Request) -> web.StreamResponse:
        denied = self.denied(request, v1=False)
        behaviour = Behaviour.parse(request.match_info["deployment"])
        if denied is not None or "content_filter" in behaviour.flags or "filtered_output" in behaviour.flags:
            rec = await self.record(request)
            if denied is not None:
                return denied
            if "content_filter" in behaviour.flags:
                return web.json_response(content_filter_error(), status=400)
            return web.json_response(self.filtered_output(rec.body or {}, behaviour))
        return await self.chat(request)

    async def deployment_embeddings(self, request: web.Request) -> web.StreamResponse:
        denied = self.denied(request, v1=False)
        if denied is not None:
            await self.record(request)
            return denied
        return await self.embeddings(request)

    def filtered_output(self, body: dict, behaviour: Behaviour) -> dict:
        return {"id": "chatcmpl-azfake%04d" % len(self.requests), "object": "chat.completion",
                "created": int(time.time()), "model": "gpt-4o-2024-11-20",
                "choices": [{"index": 0, "finish_reason": "content_filter", "logprobs": None,
                             "message": {"role": "assistant", "content": "Here is how", "refusal": None},
                             "content_filter_results": {"violence": {"filtered": True, "severity": "high"}}}],
                "usage": self.usage(body, behaviour, 3)}
