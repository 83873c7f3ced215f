"""What every wire format does the same way: ids for things the upstream did not name,
recognising a context-overflow error in an upstream's message, reading the tool-call
arguments a model produced, images given as base64 without a type or as data URLs.

(Block sequencing lives in sequencer.py, usage merging in canonical.merge_usage.)
"""

from __future__ import annotations

import base64
import binascii
import os

import orjson

# Phrases every provider family uses for "the prompt does not fit"; each format adds its own.
CONTEXT_PHRASES = ("context window", "context length", "too many tokens")


def new_id(prefix: str, hex_chars: int = 24) -> str:
    """`prefix` + random hex: message, call and item ids we must invent."""
    return prefix + os.urandom((hex_chars + 1) // 2).hex()[:hex_chars]


def mentions_context_overflow(message: str, phrases: tuple[str, ...]) -> bool:
    low = message.lower()
    return any(p in low for p in phrases)


def arguments_object(raw) -> dict | None:
    """Tool-call arguments from an upstream (an object, or JSON text of one). Empty or
    absent is `{}`; anything that is not an object (broken JSON, a bare value) is None,
    and the format decides what to keep of it."""
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if not isinstance(raw, str):
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def guess_image_type(data: str) -> str:
    """Media type from the magic bytes of base64 image data (Ollama sends no type)."""
    try:
        head = base64.b64decode(data[:24] + "=" * (-len(data[:24]) % 4), validate=False)
    except (binascii.Error, ValueError):
        return "image/png"
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"GIF8"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"BM"):
        return "image/bmp"
    return "image/png"


def split_data_url(url: str) -> tuple[str, str] | None:
    """`data:image/png;base64,XXXX` -> ("image/png", "XXXX")."""
    if not url.startswith("data:"):
        return None
    meta, sep, data = url[5:].partition(",")
    if not sep or not meta.endswith(";base64"):
        return None
    return meta[: -len(";base64")] or "image/png", data
