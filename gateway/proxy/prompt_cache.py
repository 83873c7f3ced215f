"""Prompt-cache breakpoints placed by the gateway on Anthropic and Bedrock requests.

Coding agents resend the same prefix (tools, system prompt, the conversation so far)
every turn; Anthropic and Bedrock bill a cached prefix at a tenth of the input price,
but only a prefix a request marked (`cache_control` on a block; a Bedrock `cachePoint`
block after it). An OpenAI-format client translated to those APIs sends no markers, so
the gateway places them on the encoded upstream body, in this order of priority:

  1. read:  the last message identical to the previous request of the same session
            (that request wrote there, see 2: this one reads it back);
  2. write: the last message of this request (the next turn reads it);
  3. the system prompt (with the tools before it: a prefix of its own);
  4. the tool definitions.

At most 4 markers a request, the client's own included (both APIs refuse more); a
breakpoint whose prefix is shorter than the model's minimum cacheable length is not
placed (the API would not cache it). Markers a client set are never moved or dropped.
Prefix lengths are estimated at ~4 bytes a token on the encoded JSON: cheap, and the
minimums are coarse.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict

import orjson

from providers.pricing import Price

MAX_BREAKPOINTS = 4  # Anthropic: "up to 4 cache breakpoints"; Bedrock: 4 cache checkpoints

# Minimum cacheable prompt length by model family (Anthropic prompt-caching docs; Bedrock
# lists the same for Claude): the first prefix that matches wins.
_MINIMUMS = (("opus-4-5", 4096), ("opus-4-6", 4096), ("haiku-4-5", 4096), ("sonnet-4-6", 2048),
             ("3-5-haiku", 2048), ("3-haiku", 2048), ("haiku-3", 2048))
DEFAULT_MINIMUM = 1024
CACHING_FORMATS = ("anthropic_messages", "bedrock_converse")
_NO_MARKER_BLOCKS = ("thinking", "redacted_thinking")  # the API refuses cache_control on these


def minimum_tokens(model: str) -> int:
    name = model.lower()
    return next((n for key, n in _MINIMUMS if key in name), DEFAULT_MINIMUM)


def applies(upstream_format: str, model: str, passthrough: bool, route) -> bool:
    """Whether the gateway places breakpoints on this attempt (route: a RouteInfo or None)."""
    if upstream_format not in CACHING_FORMATS:
        return False
    if upstream_format == "bedrock_converse" and "claude" not in model.lower():
        return False  # Nova and the others cache differently (no tool checkpoints): left alone
    if route is None:
        return not passthrough
    return route.prompt_cache and (not passthrough or route.prompt_cache_passthrough)


class SessionPrefixes:
    """What each session sent last: the hashes of its messages as encoded upstream, so
    the next request knows which turns are identical. Bounded (LRU), per process."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._last: OrderedDict[str, list[bytes]] = OrderedDict()

    def swap(self, session: str, hashes: list[bytes]) -> list[bytes]:
        previous = self._last.pop(session, [])
        self._last[session] = hashes
        if len(self._last) > self.size:
            self._last.popitem(last=False)
        return previous


def place(body: dict, upstream_format: str, model: str, ttl: str, session: str,
          memory: SessionPrefixes, passthrough: bool) -> int:
    """Add breakpoints to `body` in place; returns how many were added."""
    bedrock = upstream_format == "bedrock_converse"
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    tools = (body.get("toolConfig") or {}).get("tools") if bedrock else body.get("tools")
    tools = tools if isinstance(tools, list) else []
    system = body.get("system")
    existing = _count_markers(body, bedrock)
    if passthrough and existing:
        return 0  # the client manages its own cache: not a byte changed
    free = MAX_BREAKPOINTS - existing
    if free <= 0:
        return 0
    sizes = [len(orjson.dumps(m)) for m in messages]
    hashes = [hashlib.blake2b(orjson.dumps(m), digest_size=16).digest() for m in messages]
    previous = memory.swap(session, hashes) if session else []
    same = 0  # how many leading messages equal the previous request's
    while same < min(len(previous), len(hashes)) and previous[same] == hashes[same]:
        same += 1

    minimum = minimum_tokens(model) * 4  # in bytes, at ~4 bytes a token
    tools_size = len(orjson.dumps(tools)) if tools else 0
    system_size = len(orjson.dumps(system)) if system else 0
    prefix = tools_size + system_size
    ends, total = [], prefix
    for size in sizes:
        total += size
        ends.append(total)

    wanted: list[tuple[str, int]] = []  # (where, message index), by priority
    if same and same < len(messages):
        wanted.append(("message", same - 1))
    if messages:
        wanted.append(("message", len(messages) - 1))
    if system:
        wanted.append(("system", -1))
    if tools:
        wanted.append(("tools", -1))
    chosen: list[tuple[str, int]] = []
    for where, index in wanted:
        length = ends[index] if where == "message" else prefix if where == "system" else tools_size
        if length < minimum or (where, index) in chosen or _marked(body, where, index, bedrock):
            continue
        chosen.append((where, index))
        if len(chosen) == free:
            break
    added = 0
    for where, index in chosen:
        added += _mark(body, where, index, ttl, bedrock)
    return added


def one_hour_price(price: Price) -> Price:
    """A 1-hour cache write costs twice the input price (a 5-minute one 1.25 times, the
    price database's cache_write); reads are priced the same."""
    if not price.known:
        return price
    tiers = tuple(dataclasses.replace(t, cache_write=2 * t.input) for t in price.tiers)
    return dataclasses.replace(price, cache_write=2 * price.input, tiers=tiers)


def prompt_cache_key(body: dict, client_body: dict, session: str) -> None:
    """OpenAI routes requests with the same `prompt_cache_key` to the same cache: keep the
    client's (Codex sends one) where a translation lost it, else the session id."""
    if "prompt_cache_key" in body:
        return
    key = client_body.get("prompt_cache_key") or session
    if isinstance(key, str) and key:
        body["prompt_cache_key"] = key[:64]  # the API's limit


# ---------------------------------------------------------------------------- markers


def _control(ttl: str) -> dict:
    return {"type": "ephemeral", "ttl": "1h"} if ttl == "1h" else {"type": "ephemeral"}


def _point(ttl: str) -> dict:
    return {"cachePoint": {"type": "default", "ttl": "1h"} if ttl == "1h" else {"type": "default"}}


def _count_markers(body: dict, bedrock: bool) -> int:
    if bedrock:
        blocks = list(body.get("system") or []) + list((body.get("toolConfig") or {}).get("tools") or [])
        for m in body.get("messages") or []:
            blocks += m.get("content") or [] if isinstance(m, dict) else []
        return sum(1 for b in blocks if isinstance(b, dict) and "cachePoint" in b)
    count = 0
    system = body.get("system")
    for group in ([system] if isinstance(system, list) else []) + [body.get("tools") or []] + \
            [m.get("content") for m in body.get("messages") or [] if isinstance(m, dict)]:
        if isinstance(group, list):
            count += sum(1 for b in group if isinstance(b, dict) and b.get("cache_control"))
    return count


def _target(body: dict, where: str, index: int, bedrock: bool):
    """The list the marker goes into (Bedrock) or onto the last block of (Anthropic)."""
    if where == "tools":
        return (body.get("toolConfig") or {}).get("tools") if bedrock else body.get("tools")
    if where == "system":
        return body.get("system")
    return body["messages"][index].get("content")


def _marked(body: dict, where: str, index: int, bedrock: bool) -> bool:
    """A marker already closes that spot (the client's): nothing to add there."""
    target = _target(body, where, index, bedrock)
    if not isinstance(target, list) or not target or not isinstance(target[-1], dict):
        return False
    return "cachePoint" in target[-1] if bedrock else bool(target[-1].get("cache_control"))


def _mark(body: dict, where: str, index: int, ttl: str, bedrock: bool) -> int:
    """Copy-on-write: on passthrough the body's lists and blocks are the client's own
    (a fallback attempt re-encodes from them), so what changes is copied first."""
    if where == "tools":
        if bedrock:
            config = body["toolConfig"] = dict(body["toolConfig"])
            target = config["tools"] = list(config["tools"])
        else:
            target = body["tools"] = list(body["tools"])
    elif where == "system":
        system = body["system"]
        target = body["system"] = [{"type": "text", "text": system}] if isinstance(system, str) \
            else list(system)
    else:
        messages = body["messages"] = list(body["messages"])
        message = messages[index] = dict(messages[index])
        content = message.get("content")
        target = message["content"] = [{"type": "text", "text": content}] if isinstance(content, str) \
            else list(content)
    if not target:
        return 0
    if bedrock:
        target.append(_point(ttl))
        return 1
    for i in range(len(target) - 1, -1, -1):
        block = target[i]
        if isinstance(block, dict) and block.get("type") not in _NO_MARKER_BLOCKS:
            target[i] = {**block, "cache_control": _control(ttl)}
            return 1
    return 0
