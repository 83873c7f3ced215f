"""Wire-format codecs, one module per format, each exposing a module-level `CODEC`.

Imported lazily so a process only pays for the formats it serves.
"""

from __future__ import annotations

import importlib

from .base import Codec

MODULES = {
    "openai_chat": "providers.codecs.openai_chat",
    "openai_responses": "providers.codecs.openai_responses",
    "anthropic_messages": "providers.codecs.anthropic_messages",
    "ollama": "providers.codecs.ollama",
    "bedrock_converse": "providers.codecs.bedrock_converse",
}

_loaded: dict[str, Codec] = {}


def get_codec(name: str) -> Codec:
    codec = _loaded.get(name)
    if codec is None:
        codec = _loaded[name] = importlib.import_module(MODULES[name]).CODEC
    return codec
