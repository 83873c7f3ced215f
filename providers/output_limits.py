"""The largest `max_tokens` a model accepts, so a translated request can be clamped to
its target (Claude Code asks for 32000; gpt-4o refuses more than 16384).

Order of precedence: the ProviderModel's `max_output_tokens` (admin / config file), then
the known table below (the providers' model pages: platform.openai.com/docs/models,
docs.anthropic.com "Models overview"), else no limit is applied. Keys are id prefixes;
the longest matching prefix wins."""

from __future__ import annotations

from functools import lru_cache

from providers.config import ModelInfo

KNOWN: dict[str, int] = {
    # OpenAI
    "gpt-3.5-turbo": 4096,
    "gpt-4": 8192,
    "gpt-4-turbo": 4096,
    "gpt-4o": 16384,
    "gpt-4o-2024-05-13": 4096,
    "chatgpt-4o": 16384,
    "gpt-4.1": 32768,
    "gpt-5": 128000,
    "o1": 100000,
    "o1-mini": 65536,
    "o3": 100000,
    "o4-mini": 100000,
    # Anthropic (standard limits, without output-extending betas)
    "claude-3-haiku": 4096,
    "claude-3-opus": 4096,
    "claude-3-sonnet": 4096,
    "claude-3-5-haiku": 8192,
    "claude-3-5-sonnet": 8192,
    "claude-3-7-sonnet": 64000,
    "claude-sonnet-4": 64000,
    "claude-opus-4": 32000,
    "claude-opus-4-5": 64000,
    "claude-haiku-4-5": 64000,
}


@lru_cache(maxsize=1024)
def known_limit(model_id: str) -> int | None:
    name = model_id.rsplit("/", 1)[-1].lower()  # openrouter: "openai/gpt-4o"
    if "anthropic." in name:  # bedrock: "us.anthropic.claude-…-v1:0"
        name = name.split("anthropic.", 1)[1]
    if name.startswith("claude"):
        name = name.replace(".", "-")  # openrouter spells "claude-sonnet-4.5"
    best, limit = 0, None
    for prefix, value in KNOWN.items():
        if len(prefix) > best and name.startswith(prefix):
            best, limit = len(prefix), value
    return limit


def max_output_tokens(model_id: str, info: ModelInfo | None) -> int | None:
    if info is not None and info.max_output_tokens:
        return info.max_output_tokens
    return known_limit(model_id)
