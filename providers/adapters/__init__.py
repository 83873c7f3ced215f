"""Adapter registry: provider type → adapter instance."""

from __future__ import annotations

from .anthropic import AnthropicAdapter
from .azure import AzureAdapter
from .base import Adapter
from .bedrock import BedrockAdapter
from .ollama import OllamaAdapter
from .openai import OpenAIAdapter
from .openrouter import OpenRouterAdapter

ADAPTERS: dict[str, Adapter] = {
    "openai": OpenAIAdapter(),
    "openrouter": OpenRouterAdapter(),
    "ollama": OllamaAdapter(),
    "anthropic": AnthropicAdapter(),
    "azure": AzureAdapter(),
    "bedrock": BedrockAdapter(),
}


def get_adapter(provider_type: str) -> Adapter | None:
    return ADAPTERS.get(provider_type)
