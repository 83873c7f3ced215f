"""OpenAI and any OpenAI-compatible server (vLLM, llama.cpp, LM Studio, Ollama's /v1 …)."""

from __future__ import annotations

from providers.config import ProviderInfo

from .base import Adapter

PATHS = {("generate", "openai_chat"): "/chat/completions", ("generate", "openai_responses"): "/responses",
         ("embeddings", "openai_chat"): "/embeddings", ("models", "openai_chat"): "/models"}


class OpenAIAdapter(Adapter):
    wire_formats = ("openai_chat", "openai_responses")
    endpoints = ("generate", "embeddings", "models")

    def url(self, provider: ProviderInfo, model: str, endpoint: str, wire_format: str, stream: bool) -> str:
        return provider.base_url + PATHS[endpoint, wire_format]

    def auth_headers(self, provider: ProviderInfo) -> dict:
        return {"authorization": "Bearer " + provider.api_key} if provider.api_key else {}

    def prepare_body(self, provider: ProviderInfo, model: str, body: dict, endpoint: str, wire_format: str,
                     stream: bool) -> dict:
        body["model"] = model
        if endpoint == "generate" and stream and wire_format == "openai_chat":
            # Usage is always recorded: ask for it even if the client did not.
            options = body.get("stream_options")
            body["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) \
                else {"include_usage": True}
        return body


class OpenAICompatibleAdapter(OpenAIAdapter):
    """Servers that speak chat completions only (Responses requests are translated)."""

    wire_formats = ("openai_chat",)

