"""Conversation state for the Responses API (`store` + `previous_response_id`).

The gateway keeps each stored response (the full input it answered plus its output
items) so a later turn can reference it whatever provider served it, including
providers without a Responses API. Shared by every process that serves the gateway:
in Redis when REDIS_URL is set (the cache, with its TTL), else in the database
(gateway.models.StoredResponse, one row per response: expired rows are ignored here
and deleted by a beat task, gateway.retention). Either way the owner (user) is checked
on every read: another user's id answers like an unknown one.

Why not the database with Redis too: a Redis SET/GET is one round trip off the
database's writer lock; the table is for deployments that have no shared cache (the
local-memory cache is per process, so a second worker would not find the response).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
from django.conf import settings
from django.core.cache import cache

from providers.codecs.errors import GatewayError
from routing.table import KeyInfo

TTL = 7 * 24 * 3600
PREFIX = "junction:response:"
MAX_ID = 200  # StoredResponse.id's max_length


async def save(response: dict, input_items: list, key: KeyInfo) -> None:
    ident = response.get("id")
    if not isinstance(ident, str) or len(ident) > MAX_ID or key.user_id is None:
        return  # nobody could load it: a response is only for its owner
    if settings.REDIS_URL:
        await cache.aset(PREFIX + ident, orjson.dumps({"input": input_items, "response": response,
                                                       "user_id": key.user_id, "key_id": key.id}), TTL)
        return
    from gateway.models import StoredResponse

    now = datetime.now(timezone.utc)
    # One INSERT … ON CONFLICT DO UPDATE (SQLite and PostgreSQL): a re-sent id replaces its row.
    await StoredResponse.objects.abulk_create(
        [StoredResponse(id=ident, user_id=key.user_id, key_id=key.id, created_at=now,
                        expires_at=now + timedelta(seconds=TTL),
                        payload=orjson.dumps({"input": input_items, "response": response}).decode())],
        update_conflicts=True, unique_fields=["id"],
        update_fields=["user_id", "key_id", "created_at", "expires_at", "payload"])


async def load(ident: str, key: KeyInfo) -> dict | None:
    """The stored response, only for the user who created it (any of their keys):
    anyone else gets None, the same answer as for an unknown id."""
    if not isinstance(ident, str) or len(ident) > MAX_ID or key.user_id is None:
        return None
    if settings.REDIS_URL:
        raw = await cache.aget(PREFIX + ident)
        if not raw:
            return None
        stored = orjson.loads(raw)
        return stored if stored.get("user_id") == key.user_id else None
    from gateway.models import StoredResponse

    row = await StoredResponse.objects.filter(id=ident, user_id=key.user_id,
                                              expires_at__gt=datetime.now(timezone.utc)) \
        .values_list("payload", flat=True).afirst()
    return None if row is None else orjson.loads(row)


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
