"""Where a request's price comes from, in this order (issue 9):

1. admin: the ProviderModel's prices, when the admin typed any (input or output > 0): an
   explicit override (a negotiated discount, a private deployment), so it wins even over
   the provider's own figure;
2. provider: the cost the provider itself reports it billed (OpenRouter `usage.cost`), per
   request (applied by gateway.proxy.context.RequestContext.cost);
3. database: the `genai-prices` package's bundled snapshot (offline, pinned; never
   fetched at run time), matched by provider type (openai, anthropic, aws for
   Bedrock, azure, openrouter) or, for OpenAI-compatible servers, by base URL
   (api.deepseek.com, api.groq.com …);
4. local: Ollama models cost nothing;
5. unpriced: none of the above. Recorded as $0 with price_source "unpriced" and shown as
   a warning in the admin and /reports/, never silently as spend.

Prices are resolved when the config snapshot is built (ModelInfo.price) and, for
models named only at request time (`provider/<any-model>`, default routes), looked up
once and memoised, so the hot path does a dict lookup. `Price.cost(usage)` applies
cache read/write prices and long-context tiers; reasoning tokens are part of the
output tokens at every supported provider and billed at the output price.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

log = logging.getLogger("junction.pricing")

ADMIN, PROVIDER, DATABASE, LOCAL, UNPRICED = "admin", "provider", "database", "local", "unpriced"
SOURCES = (ADMIN, PROVIDER, DATABASE, LOCAL, UNPRICED)

# Junction provider type → genai-prices provider id.
_DATABASE_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "bedrock": "aws", "azure": "azure",
                       "openrouter": "openrouter"}
_LOCAL_TYPES = ("ollama",)


@dataclass(frozen=True, slots=True)
class Tier:
    """Prices for requests whose input (cache included) exceeds `above` tokens: the
    database's cliff model, the whole request is billed at the tier's rates."""

    above: int
    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens. cache_read/cache_write None: billed at the input price."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    context_window: int | None = None
    tiers: tuple[Tier, ...] = ()  # ascending by `above`
    source: str = DATABASE

    @property
    def known(self) -> bool:
        return self.source != UNPRICED

    def cost(self, input_tokens: int, output_tokens: int, cache_read_tokens: int = 0,
             cache_write_tokens: int = 0) -> float:
        """`input_tokens` counts every prompt token, cached and cache-written ones included
        (the canonical Usage convention)."""
        rates = self._rates(input_tokens)
        uncached = max(input_tokens - cache_read_tokens - cache_write_tokens, 0)
        read = rates.cache_read if rates.cache_read is not None else rates.input
        write = rates.cache_write if rates.cache_write is not None else rates.input
        return (uncached * rates.input + cache_read_tokens * read + cache_write_tokens * write
                + output_tokens * rates.output) / 1_000_000

    def cache_saving(self, input_tokens: int, cache_read_tokens: int = 0,
                     cache_write_tokens: int = 0) -> float:
        """What provider-side prompt caching saved on this input against the uncached input
        price: reads below it save, writes above it (Anthropic's 1.25x) cost; can be negative."""
        if not cache_read_tokens and not cache_write_tokens:
            return 0.0
        rates = self._rates(input_tokens)
        read = rates.cache_read if rates.cache_read is not None else rates.input
        write = rates.cache_write if rates.cache_write is not None else rates.input
        return (cache_read_tokens * (rates.input - read)
                + cache_write_tokens * (rates.input - write)) / 1_000_000

    def _rates(self, input_tokens: int) -> "Price | Tier":
        for tier in reversed(self.tiers):
            if input_tokens > tier.above:
                return tier
        return self


UNKNOWN = Price(0.0, 0.0, source=UNPRICED)
FREE = Price(0.0, 0.0, 0.0, 0.0, source=LOCAL)


def price_for(provider_type: str, model_id: str, admin_model_info=None, base_url: str = "") -> Price:
    """The price of `model_id` served by a provider of `provider_type`: the admin's
    (a routing.table.ModelInfo or ProviderModel with input/output/cache prices) when set,
    else the database's, else 0 for local providers, else UNKNOWN. The provider's own
    reported cost (OpenRouter) is applied per request by the caller, ahead of any source
    but the admin's (see Price.source)."""
    info = admin_model_info
    if info is not None and (float(info.input_price) or float(info.output_price)):
        return Price(float(info.input_price), float(info.output_price), _opt(info.cache_read_price),
                     _opt(info.cache_write_price), info.context_window, source=ADMIN)
    if provider_type in _LOCAL_TYPES:
        return FREE
    return database_price(provider_type, model_id, base_url) or UNKNOWN


@functools.lru_cache(maxsize=4096)
def database_price(provider_type: str, model_id: str, base_url: str = "") -> Price | None:
    """The bundled price database's price (memoised: the first call per model walks the
    database's match rules, later ones are a dict lookup)."""
    if not model_id:
        return None
    try:
        from genai_prices import data_snapshot
    except ImportError:  # the dependency is pinned in requirements.txt; be loud, not wrong
        log.error("genai-prices is not installed: models without an admin price are unpriced")
        return None
    snapshot = data_snapshot.get_snapshot()
    attempts = []
    if provider_type == "openai" and base_url:
        attempts.append((None, base_url))  # an OpenAI-compatible server: DeepSeek, Groq, Mistral …
    provider_id = _DATABASE_PROVIDERS.get(provider_type)
    if provider_id:
        attempts.append((provider_id, None))
    for pid, url in attempts:
        try:
            _, model = snapshot.find_provider_model(model_id, None, pid, url)
        except LookupError:
            continue
        try:
            return _convert(model)
        except Exception:  # a price shape this version does not map: not a guess
            log.warning("price database entry for %s/%s could not be read", provider_type, model_id)
            return None
    return None


def _convert(model) -> Price:
    prices = model.get_prices(datetime.now(tz=timezone.utc))
    fields = {"input": prices.input_mtok, "output": prices.output_mtok,
              "cache_read": prices.cache_read_mtok, "cache_write": prices.cache_write_mtok}
    base = {name: _base(value) for name, value in fields.items()}
    starts = sorted({t.start for value in fields.values() for t in getattr(value, "tiers", ())})
    tiers = tuple(Tier(start, **{name: _at(value, start) for name, value in fields.items()})
                  for start in starts)
    return Price(base["input"] or 0.0, base["output"] or 0.0, base["cache_read"], base["cache_write"],
                 model.context_window, tiers, DATABASE)


def _base(value) -> float | None:
    if value is None:
        return None
    return float(getattr(value, "base", value))


def _at(value, start: int) -> float | None:
    """A field's rate for inputs above `start`: its highest tier at or below it, else its base."""
    if value is None:
        return None
    rate = getattr(value, "base", value)
    for tier in getattr(value, "tiers", ()):
        if tier.start <= start:
            rate = tier.price
    return float(rate)


def _opt(value) -> float | None:
    return None if value is None else float(value)


def warm() -> None:
    """Load the database (about a second) off the event loop, at snapshot build."""
    database_price("openai", "gpt-4o")


def lookup(model_id: str, provider_type: str = "openai") -> Price | None:
    """For sync_models: the database's price of a discovered model, if it has one."""
    return database_price(provider_type, model_id)


def provider_price(provider, model_id: str) -> Price:
    """The price of `model_id` on a providers.config.ProviderInfo: resolved when the snapshot
    was built for listed models, else looked up once per process (memoised)."""
    info = provider.model_info(model_id)
    if info is not None and info.price is not None:
        return info.price
    return price_for(provider.type, model_id, info, provider.base_url)
