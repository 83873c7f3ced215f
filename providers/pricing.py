"""Known list prices of well-known models, USD per 1M tokens, for `sync_models`
(new ProviderModel rows start with them; the admin edits them afterwards).

Checked 2026-11-25 against the providers' public pricing pages:
- OpenAI: developers.openai.com/api/docs/pricing (standard tier; cache_read is
  "cached input"; OpenAI does not bill cache writes separately).
- Anthropic: platform.claude.com/docs/en/about-claude/pricing (cache_write is the
  5-minute write price, cache_read "cache hits & refreshes"; prompts up to 200K).
Bedrock lists Anthropic models at Anthropic's prices in its standard regions, and
Azure OpenAI's global deployments at OpenAI's, so one table serves them; ids are
normalised first (`normalise`). Local models (Ollama) cost nothing and never look
here. Prices change: re-check the pages and the date above when editing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Price:
    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    context_window: int | None = None


PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-5": Price(1.25, 10.00, 0.125, None, 400_000),
    "gpt-5-mini": Price(0.25, 2.00, 0.025, None, 400_000),
    "gpt-5-nano": Price(0.05, 0.40, 0.005, None, 400_000),
    "gpt-4.1": Price(2.00, 8.00, 0.50, None, 1_047_576),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10, None, 1_047_576),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025, None, 1_047_576),
    "gpt-4o": Price(2.50, 10.00, 1.25, None, 128_000),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075, None, 128_000),
    "o3": Price(2.00, 8.00, 0.50, None, 200_000),
    "o3-mini": Price(1.10, 4.40, 0.55, None, 200_000),
    "o4-mini": Price(1.10, 4.40, 0.275, None, 200_000),
    "text-embedding-3-small": Price(0.02, 0.0, None, None, 8_191),
    "text-embedding-3-large": Price(0.13, 0.0, None, None, 8_191),
    # Anthropic
    "claude-opus-4-5": Price(5.00, 25.00, 0.50, 6.25, 200_000),
    "claude-opus-4-1": Price(15.00, 75.00, 1.50, 18.75, 200_000),
    "claude-opus-4": Price(15.00, 75.00, 1.50, 18.75, 200_000),
    "claude-sonnet-4-5": Price(3.00, 15.00, 0.30, 3.75, 200_000),
    "claude-sonnet-4": Price(3.00, 15.00, 0.30, 3.75, 200_000),
    "claude-3-7-sonnet": Price(3.00, 15.00, 0.30, 3.75, 200_000),
    "claude-haiku-4-5": Price(1.00, 5.00, 0.10, 1.25, 200_000),
    "claude-3-5-haiku": Price(0.80, 4.00, 0.08, 1.00, 200_000),
    "claude-3-haiku": Price(0.25, 1.25, 0.03, 0.30, 200_000),
}

# What may follow a known name in a real id: a date, "-latest", a Bedrock version.
_SUFFIX = re.compile(r"(-\d{8}|-\d{4}-\d{2}-\d{2}|-latest)?(-v\d+(:\d+)?)?(:\d+k)?")
# Bedrock inference-profile (geography) and vendor prefixes: us.anthropic.claude-…
_GEOGRAPHIES = ("us.", "eu.", "apac.", "au.", "jp.", "ca.", "us-gov.", "global.")
_VENDORS = ("anthropic.", "openai.", "meta.", "amazon.", "mistral.", "cohere.", "deepseek.", "qwen.")


def normalise(model_id: str) -> str:
    """"us.anthropic.claude-sonnet-4-5-20250929-v1:0" → "claude-sonnet-4-5-20250929-v1:0",
    "anthropic/claude-sonnet-4.5" (OpenRouter) → "claude-sonnet-4-5", ARNs → their last part."""
    name = model_id.strip().lower().rsplit("/", 1)[-1]
    for prefixes in (_GEOGRAPHIES, _VENDORS):
        name = next((name[len(p):] for p in prefixes if name.startswith(p)), name)
    if name.startswith("claude"):
        name = name.replace(".", "-")
    return name


def lookup(model_id: str) -> Price | None:
    """The list price of a known model, matching its dated/versioned ids too; the
    longest known name wins (gpt-4o-mini before gpt-4o), and a name never matches a
    different model that merely starts with it (o3-pro is not o3)."""
    name = normalise(model_id)
    for known in sorted(PRICES, key=len, reverse=True):
        if name.startswith(known) and _SUFFIX.fullmatch(name[len(known):]):
            return PRICES[known]
    return None
