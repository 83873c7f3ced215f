"""providers/output_limits.py: the largest max_tokens a model accepts."""

from __future__ import annotations

import pytest

from providers.output_limits import max_output_tokens
from providers.config import ModelInfo


@pytest.mark.parametrize("model, limit", [
    ("gpt-4o", 16384), ("gpt-4o-mini", 16384), ("gpt-4o-2024-05-13", 4096), ("openai/gpt-4o", 16384),
    ("gpt-4.1-mini", 32768), ("gpt-3.5-turbo", 4096), ("o3-mini", 100000), ("gpt-5-mini", 128000),
    ("claude-sonnet-4-5-20250929", 64000), ("claude-opus-4-1-20250805", 32000),
    ("anthropic/claude-sonnet-4.5", 64000), ("us.anthropic.claude-3-5-haiku-20241022-v1:0", 8192),
    ("claude-3-opus-20240229", 4096), ("qwen2.5-coder:14b", None), ("mock", None),
])
def test_known_limits(model, limit):
    assert max_output_tokens(model, None) == limit


def test_the_provider_model_override_wins():
    assert max_output_tokens("gpt-4o", ModelInfo("gpt-4o", max_output_tokens=8000)) == 8000
    assert max_output_tokens("gpt-4o", ModelInfo("gpt-4o")) == 16384
