"""What every wire format does the same way: ids for things the upstream did not name,
recognising a context-overflow error in an upstream's message, image data URLs.

(Block sequencing lives in sequencer.py, usage merging in canonical.merge_usage.)
"""

from __future__ import annotations

import os

# Phrases every provider family uses for "the prompt does not fit"; each format adds its own.
CONTEXT_PHRASES = ("context window", "context length", "too many tokens")


def new_id(prefix: str, hex_chars: int = 24) -> str:
    """`prefix` + random hex: message, call and item ids we must invent."""
    return prefix + os.urandom((hex_chars + 1) // 2).hex()[:hex_chars]


def mentions_context_overflow(message: str, phrases: tuple[str, ...]) -> bool:
    low = message.lower()
    return any(p in low for p in phrases)
