"""Adapter registry: provider type → adapter instance."""

from __future__ import annotations

from .base import Adapter
from .openai import OllamaOpenAIAdapter, OpenAIAdapter

ADAPTERS: dict[str, Adapter] = {
    "openai": OpenAIAdapter(),
    "openrouter": OpenAIAdapter(),
    "ollama": OllamaOpenAIAdapter(),
}


def get_adapter(provider_type: str) -> Adapter | None:
    return ADAPTERS.get(provider_type)
