"""Adapter registry: provider type → adapter instance."""

from __future__ import annotations

from .anthropic import AnthropicAdapter
from .base import Adapter
from .openai import OllamaOpenAIAdapter, OpenAIAdapter, OpenAICompatibleAdapter

ADAPTERS: dict[str, Adapter] = {
    "openai": OpenAIAdapter(),
    "openrouter": OpenAICompatibleAdapter(),
    "ollama": OllamaOpenAIAdapter(),
    "anthropic": AnthropicAdapter(),
}


def get_adapter(provider_type: str) -> Adapter | None:
    return ADAPTERS.get(provider_type)
