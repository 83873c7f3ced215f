"""Anthropic Messages API (base_url is the host root, e.g. https://api.anthropic.com)."""

from __future__ import annotations

from providers.config import ProviderInfo

from .base import Adapter

API_VERSION = "2023-06-01"
PATHS = {"generate": "/v1/messages", "count_tokens": "/v1/messages/count_tokens", "models": "/v1/models"}


class AnthropicAdapter(Adapter):
    wire_formats = ("anthropic_messages",)
    endpoints = ("generate", "count_tokens", "models")
    # Same-format clients (Claude Code …) pick the API version and beta features.
    passthrough_headers = (b"anthropic-version", b"anthropic-beta")
    passthrough_query = True  # Claude Code calls /v1/messages?beta=true

    def url(self, provider: ProviderInfo, model: str, endpoint: str, wire_format: str, stream: bool) -> str:
        return provider.base_url + PATHS[endpoint]

    def auth_headers(self, provider: ProviderInfo) -> dict:
        headers = {"x-api-key": provider.api_key} if provider.api_key else {}
        return headers

    def build(self, provider, model, body, endpoint, wire_format, stream, dumps, client_headers=None):
        request = super().build(provider, model, body, endpoint, wire_format, stream, dumps, client_headers)
        request.headers.setdefault("anthropic-version", API_VERSION)
        return request
