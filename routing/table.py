"""The in-memory configuration snapshot the hot path reads: frozen dataclasses,
built from the database by gateway.snapshot and swapped atomically. Pure Python."""

from __future__ import annotations

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
    models: dict[str, ModelInfo] = field(default_factory=dict)

    def model_info(self, model_id: str) -> ModelInfo | None:
        return self.models.get(model_id)


@dataclass(frozen=True, slots=True)
class TargetInfo:
    provider: str
    model: str  # resolved: never empty
    weight: int = 1


@dataclass(frozen=True, slots=True)
class RouteInfo:
    name: str
    strategy: str
    targets: tuple[TargetInfo, ...]


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


EMPTY = ConfigSnapshot(version=None, providers={}, routes={}, keys={})
