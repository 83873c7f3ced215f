"""OpenAI and any OpenAI-compatible server (vLLM, llama.cpp, LM Studio, Ollama's /v1 …)."""

from __future__ import annotations

from routing.table import ProviderInfo

from .base import Adapter

PATHS = {"chat": "/chat/completions", "embeddings": "/embeddings", "models": "/models",
         "responses": "/responses"}


class OpenAIAdapter(Adapter):
    wire_format = "openai_chat"
    endpoints = ("chat", "embeddings", "models")

    def url(self, provider: ProviderInfo, model: str, endpoint: str, stream: bool) -> str:
        return provider.base_url + PATHS[endpoint]

    def auth_headers(self, provider: ProviderInfo) -> dict:
        return {"authorization": "Bearer " + provider.api_key} if provider.api_key else {}

    def prepare_body(self, provider: ProviderInfo, model: str, body: dict, endpoint: str, stream: bool) -> dict:
        body["model"] = model
        if endpoint == "chat" and stream:
            # Usage is always recorded: ask for it even if the client did not.
            options = body.get("stream_options")
            body["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) \
                else {"include_usage": True}
        return body


class OllamaOpenAIAdapter(OpenAIAdapter):
    """Ollama through its OpenAI-compatible /v1 API (base_url is the host root)."""

    def url(self, provider: ProviderInfo, model: str, endpoint: str, stream: bool) -> str:
        return provider.base_url + "/v1" + PATHS[endpoint]
