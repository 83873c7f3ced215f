"""The in-memory configuration snapshot the hot path reads: frozen dataclasses,
built from the database by gateway.snapshot and swapped atomically. Pure Python."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ModelInfo:
    model_id: str
    context_window: int | None = None
    deployment: str = ""
    # USD per 1M tokens
    input_price: float = 0.0
    output_price: float = 0.0
    cache_read_price: float | None = None
    cache_write_price: float | None = None


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    name: str
    type: str
    base_url: str
    default_model: str = ""
    api_key: str = ""
    region: str = ""
    api_version: str = ""
    aws_access_key_id: str = ""
    aws_secret_access_key: str = ""
    aws_profile: str = ""
    extra_headers: tuple[tuple[str, str], ...] = ()
    connect_timeout: float = 5.0
    first_token_timeout: float = 60.0
    total_timeout: float = 600.0
    wire_api: str = "auto"  # openai/azure: auto | chat | responses (see providers.models.Provider)
    proxy: str = ""  # "": HTTPS_PROXY/HTTP_PROXY/NO_PROXY; a proxy URL; "direct" (providers.models.Provider)
    ca_bundle: str = ""  # PEM file of the CAs to trust instead of the system's
    models: dict[str, ModelInfo] = field(default_factory=dict)

    def model_info(self, model_id: str) -> ModelInfo | None:
        return self.models.get(model_id)


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
    # ("user" | "key", id) → budgets (gateway.limits.BudgetInfo)
    budgets: dict[tuple[str, int], tuple] = field(default_factory=dict)
    health: dict[str, str] = field(default_factory=dict)  # provider name → ProviderHealth.status
    health_latency_ms: dict[str, float] = field(default_factory=dict)  # provider name → probe latency EWMA


EMPTY = ConfigSnapshot(version=None, providers={}, routes={}, keys={})
