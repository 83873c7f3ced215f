"""The in-memory configuration snapshot the hot path reads: frozen dataclasses,
built from the database by gateway.snapshot and swapped atomically. Pure Python
(the provider entries are providers.config's)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from providers.config import ProviderInfo


@dataclass(frozen=True, slots=True)
class TargetInfo:
    provider: str
    model: str  # resolved: never empty
    weight: int = 1


@dataclass(frozen=True, slots=True)
class RuleConditions:
    """What a request must look like for a rule to apply; every condition set is
    required (AND), None means "not checked". Parsed from RouteRule.conditions by
    routing.rules.parse_conditions; the meaning of each is documented there."""

    min_tools: int | None = None
    max_tools: int | None = None
    min_prompt_tokens: int | None = None
    max_prompt_tokens: int | None = None
    has_images: bool | None = None
    reasoning_effort: frozenset[str] | None = None
    system_pattern: re.Pattern | None = None
    message_pattern: re.Pattern | None = None
    keys: tuple[str, ...] | None = None  # key prefixes
    users: frozenset[str] | None = None
    clients: frozenset[str] | None = None
    side_call: bool | None = None
    max_output_tokens_below: int | None = None


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """A route rule: requests matching `conditions` go to another route, or to one
    provider/model first (with the route's own targets as fallback)."""

    name: str
    conditions: RuleConditions = RuleConditions()
    target_route: str | None = None
    target_provider: str | None = None
    target_model: str = ""  # resolved: the provider's default model when the rule leaves it empty
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class RouteInfo:
    name: str
    strategy: str
    targets: tuple[TargetInfo, ...]
    rules: tuple[RuleInfo, ...] = ()  # in evaluation order
    session_affinity: bool = True
    context_window_fallback: bool = True  # skip too-small targets; retry larger ones on a context error
    hosted_tools: str = "map"  # map | drop | refuse (routing.models.HostedTools)
    prompt_cache: bool = True  # breakpoints on translated Anthropic/Bedrock requests (proxy/prompt_cache.py)
    prompt_cache_passthrough: bool = False  # …and on passthrough ones without client markers
    prompt_cache_ttl: str = "5m"  # 5m | 1h
    response_cache: bool = False  # gateway.proxy.response_cache
    response_cache_any_temperature: bool = False
    response_cache_ttl: int = 3600  # seconds
    response_cache_max_entries: int = 1000


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: int | None
    user_id: int | None
    username: str
    prefix: str
    expires_at: float | None = None  # epoch seconds
    revoked: bool = False
    allowed_routes: frozenset[str] | None = None  # None: everything
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    team_ids: tuple[int, ...] = ()  # the user's groups: team budgets count for them
    require_prices: bool = False  # refuse unpriced models while a hard budget applies
    user_rpm_limit: int | None = None  # the user's (gateway.models.UserLimits): all their keys count
    user_tpm_limit: int | None = None


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    version: object
    providers: dict[str, ProviderInfo]
    routes: dict[str, RouteInfo]
    keys: dict[str, KeyInfo]  # by SHA-256 of the key
    default_route: str | None = None
    fallback: tuple[TargetInfo, ...] = ()  # global fallback chain (config `routing.fallback`)
    model_index: dict[str, tuple[str, ...]] = field(default_factory=dict)  # model id → provider names
    anonymous: KeyInfo | None = None  # set when GATEWAY_ALLOW_ANONYMOUS
    # ("user" | "key" | "team", id) → budgets (gateway.limits.BudgetInfo)
    budgets: dict[tuple[str, int], tuple] = field(default_factory=dict)
    health: dict[str, str] = field(default_factory=dict)  # provider name → ProviderHealth.status
    health_latency_ms: dict[str, float] = field(default_factory=dict)  # provider name → probe latency EWMA
    # Providers left out of this snapshot, with the reason (e.g. a secret no key decrypts).
    provider_problems: dict[str, str] = field(default_factory=dict)


EMPTY = ConfigSnapshot(version=None, providers={}, routes={}, keys={})
