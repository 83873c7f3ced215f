"""Ollama native API: wire constants and helpers shared by the parts of this format."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson


def _parse_arguments(arguments) -> dict:
    """Ollama sends an object; OpenAI-shaped bodies (Goose via /v1) send a JSON string."""
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str):
        if not arguments.strip():
            return {}
        try:
            value = orjson.loads(arguments)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {"value": value}
    if arguments is None:
        return {}
    return {"value": arguments}


def _content_text(content) -> str:
    """Ollama content is a string; tolerate OpenAI-style part lists."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in ("text", None)
        )
    return str(content)


def _now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stop_from_done_reason(done_reason: str | None, had_tools: bool):
    if had_tools:
        return "tool_use"
    if done_reason == "length":
        return "max_tokens"
    return "end_turn"


def _done_reason(stop_reason) -> str:
    return "length" if stop_reason == "max_tokens" else "stop"
