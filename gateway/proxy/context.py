"""Per-request state and its UsageRecord row."""

from __future__ import annotations

import itertools
import secrets
import time
from datetime import datetime, timezone
from urllib.parse import quote

from providers.codecs.canonical import Usage, add_usage
from providers.config import ModelInfo
from providers.pricing import ADMIN, PROVIDER, UNKNOWN, Price
from routing.table import KeyInfo

# Request ids: a random per-process prefix and a counter (uuid4 costs a urandom call
# per request); unique across processes and restarts with overwhelming probability.
_ID_PREFIX = "req_" + secrets.token_hex(8)
_ids = itertools.count(1)


class RequestContext:
    __slots__ = ("request_id", "started", "wall", "endpoint", "key", "requested_model", "route", "provider",
                 "model", "model_info", "rule", "candidates", "stream", "status", "error_type",
                 "error_message", "usage", "ttft", "attempts", "session_id", "disconnected", "recorded",
                 "chunks", "warning", "price", "billable", "limit_headers",
                 "dropped_tools", "cache_status", "saved_usd", "abandoned", "abandoned_cost",
                 "abandoned_source")

    def __init__(self, endpoint: str) -> None:
        self.request_id = f"{_ID_PREFIX}{next(_ids):08x}"
        self.started = time.perf_counter()
        self.wall = time.time()
        self.endpoint = endpoint
        self.key: KeyInfo | None = None
        self.requested_model = ""
        self.route = ""
        self.provider = ""
        self.model = ""
        self.model_info: ModelInfo | None = None
        self.rule = ""
        self.candidates: list[str] = []
        self.stream = False
        self.status = 0
        self.error_type = ""
        self.error_message = ""
        self.usage: Usage | None = None
        self.ttft: float | None = None
        self.attempts: list[dict] = []
        self.session_id = ""
        self.disconnected = False
        self.recorded = False
        self.chunks = 0  # content-bearing stream events, for usage estimates
        self.warning = ""  # soft budget spent: x-gateway-budget-warning
        self.price: Price = UNKNOWN  # the current candidate's (providers.pricing.price_for)
        self.billable = False  # the last attempt reached a provider that did not refuse it
        self.limit_headers: dict[str, str] | None = None  # x-ratelimit-* where RPM/TPM limits apply
        self.dropped_tools: list[str] = []  # hosted tools left out upstream: x-gateway-dropped-tools
        self.cache_status = "bypass"  # x-gateway-cache: hit | miss | bypass (response_cache.py)
        self.saved_usd = 0.0  # a cache hit: what the cached answer cost upstream
        # Attempts that reached a provider and were abandoned for a fallback (issue 9): their
        # estimated usage summed, their cost at their own prices, the first one's price source.
        self.abandoned: Usage | None = None
        self.abandoned_cost = 0.0
        self.abandoned_source = ""

    def fail(self, status: int, error_type: str, message: str) -> None:
        self.status, self.error_type, self.error_message = status, error_type, message[:2000]

    def cost(self) -> tuple[float, str]:
        """(USD, price source) in issue 9's order: an admin price (an explicit override,
        e.g. a negotiated discount), else what the provider reported it billed (OpenRouter's
        usage.cost), else the database price, local 0 or unpriced (see providers.pricing)."""
        usage, price = self.usage, self.price
        if usage is None:
            return 0.0, price.source
        if usage.cost is not None and price.source != ADMIN:
            return usage.cost, PROVIDER
        return price.cost(usage.input_tokens, usage.output_tokens, usage.cache_read_tokens,
                          usage.cache_write_tokens), price.source

    def fold(self, usage: Usage, cost: float, source: str) -> None:
        """Book the current attempt (abandoned for the next candidate) into the record: its
        tokens and cost on its attempt-chain entry, and into the record's totals."""
        _bill_attempt(self.attempts[-1], usage, cost)
        if self.abandoned is None:
            self.abandoned, self.abandoned_source = usage, source
        else:
            self.abandoned = add_usage(self.abandoned, usage)
        self.abandoned_cost += cost

    def to_record(self) -> dict:
        usage = self.usage or Usage()
        key = self.key
        cost, source = self.cost()
        source = source if self.usage is not None else ""
        if self.abandoned is not None:
            # One record per request: abandoned attempts' estimates are added to the final one's.
            if self.usage is not None:
                _bill_attempt(self.attempts[-1], usage, cost)
            else:
                source = self.abandoned_source
            usage = add_usage(usage, self.abandoned)
            cost += self.abandoned_cost
        return {
            "request_id": self.request_id,
            "created_at": datetime.fromtimestamp(self.wall, tz=timezone.utc),
            "key_id": key.id if key else None,
            "user_id": key.user_id if key else None,
            "endpoint": self.endpoint,
            "requested_model": self.requested_model[:200],
            "route": self.route[:200],
            "rule": self.rule[:100],
            "candidates": self.candidates,
            "provider": self.provider,
            "model": self.model[:200],
            "status": self.status,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "stream": self.stream,
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "usage_estimated": usage.estimated,
            "cost_usd": round(cost, 8),
            "price_source": source,
            "latency_ms": round((time.perf_counter() - self.started) * 1000, 3),
            "ttft_ms": None if self.ttft is None else round(self.ttft * 1000, 3),
            "attempts": len(self.attempts),
            "attempt_chain": self.attempts,
            "session_id": self.session_id[:200],
            "client_disconnected": self.disconnected,
            "dropped_tools": self.dropped_tools,
            "cache_hit": self.cache_status == "hit",
            "saved_usd": round(self.saved_usd, 8),
            # Prompt caching's saving against the uncached input price (a few multiplications).
            "cache_saved_usd": round(self.price.cache_saving(usage.input_tokens, usage.cache_read_tokens,
                                                             usage.cache_write_tokens), 8),
        }

    def response_headers(self) -> dict[str, str]:
        headers = {
            "x-request-id": self.request_id,
            "x-gateway-route": _header_safe(self.route),
            "x-gateway-provider": _header_safe(self.provider),
            "x-gateway-model": _header_safe(self.model),
            "x-gateway-attempts": str(len(self.attempts)),
            "x-gateway-cache": self.cache_status,
            "x-gateway-rule": _header_safe(self.rule),
            "x-gateway-candidates": _header_safe(",".join(self.candidates[:8])),
        }
        if self.warning:
            headers["x-gateway-budget-warning"] = _header_safe(self.warning)
        if self.limit_headers:
            headers.update(self.limit_headers)
        if self.dropped_tools:
            headers["x-gateway-dropped-tools"] = _header_safe(",".join(self.dropped_tools))
        return headers


def _bill_attempt(attempt: dict, usage: Usage, cost: float) -> None:
    """An attempt-chain entry's own tokens and cost (listed when a request billed several)."""
    attempt.update(prompt_tokens=usage.input_tokens, completion_tokens=usage.output_tokens,
                   cost_usd=round(cost, 8))
    if usage.estimated:
        attempt["estimated"] = True


def _header_safe(value: str) -> str:
    """Client-chosen model names and admin-entered names may hold anything; header
    values take visible ASCII only: anything else is percent-encoded (an unencodable
    header would fail the response after the upstream was already paid)."""
    if value.isascii() and value.isprintable():
        return value[:300]
    return quote(value, safe=_VISIBLE)[:300]


_VISIBLE = "".join(chr(c) for c in range(0x21, 0x7f) if chr(c) != "%") + " "
