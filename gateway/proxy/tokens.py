"""Offline token estimates (bpe-openai ships o200k, no download at run time).
Used for count_tokens on routes whose provider has no counting endpoint, and when
an upstream reports no usage (the record is then marked estimated)."""

from __future__ import annotations

import functools

import orjson

from providers.codecs import canonical as c


@functools.cache
def _encoding():
    import bpe_openai

    return bpe_openai.get_encoding("o200k_base")


def count_text(text: str) -> int:
    if not text:
        return 0
    try:
        return len(_encoding().encode(text))
    except Exception:  # tokenizer unavailable: the classic ~4 characters a token
        return max(1, len(text) // 4)


def _block_text(block) -> str:
    if isinstance(block, c.TextBlock):
        return block.text
    if isinstance(block, c.ToolUseBlock):
        return block.name + orjson.dumps(block.input).decode()
    if isinstance(block, c.ToolResultBlock):
        return "".join(_block_text(b) for b in block.content)
    if isinstance(block, c.ThinkingBlock):
        return block.thinking
    return ""


def estimate_request(request: c.Request) -> int:
    parts = [b.text for b in request.system]
    for message in request.messages:
        parts.extend(_block_text(b) for b in message.content)
        parts.append("\n")  # per-message framing
    for tool in request.tools or []:
        parts.append(tool.name + (tool.description or "") + orjson.dumps(tool.input_schema).decode())
    images = sum(1 for m in request.messages for b in m.content if isinstance(b, c.ImageBlock))
    return count_text("".join(parts)) + 3 * len(request.messages) + 1_000 * images
