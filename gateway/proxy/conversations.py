"""Conversation state for the Responses API (`store` + `previous_response_id`).

The gateway keeps each stored response (the full input it answered plus its output
items) so a later turn can reference it whatever provider served it, including
providers without a Responses API. Kept in Django's cache: local memory in the
embedded profile, Redis (shared by every process) in the scaled one.
"""

from __future__ import annotations

import orjson
from django.core.cache import cache

from providers.codecs.errors import GatewayError
from routing.table import KeyInfo

TTL = 7 * 24 * 3600
PREFIX = "junction:response:"


async def save(response: dict, input_items: list, key: KeyInfo) -> None:
    ident = response.get("id")
    if isinstance(ident, str):
        await cache.aset(PREFIX + ident, orjson.dumps({"input": input_items, "response": response,
                                                       "user_id": key.user_id, "key_id": key.id}), TTL)


async def load(ident: str, key: KeyInfo) -> dict | None:
    """The stored response, only for the user who created it (any of their keys):
    anyone else gets None, the same answer as for an unknown id."""
    if not isinstance(ident, str) or len(ident) > 200:
        return None
    raw = await cache.aget(PREFIX + ident)
    if not raw:
        return None
    stored = orjson.loads(raw)
    if stored.get("user_id") != key.user_id or stored.get("user_id") is None:
        return None
    return stored


def as_items(value) -> list:
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    return list(value or [])


async def expand(body: dict, key: KeyInfo) -> dict:
    """Replace `previous_response_id` by the stored conversation it names (the caller's own)."""
    ident = body.get("previous_response_id")
    if not ident:
        return body
    stored = await load(ident, key)
    if stored is None:
        raise GatewayError("not_found", f"Previous response with id '{ident}' not found.", 404,
                           code="previous_response_not_found")
    body = dict(body)
    del body["previous_response_id"]
    body["input"] = stored["input"] + (stored["response"].get("output") or []) + as_items(body.get("input"))
    return body
