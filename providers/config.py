"""What the hot path knows about a provider and its models: frozen dataclasses
built from the database into the config snapshot (gateway.snapshot). Pure Python,
so adapters and codecs can take them without depending on routing or Django."""

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
    max_output_tokens: int | None = None  # ProviderModel override; see providers/output_limits.py
    price: object = None  # providers.pricing.Price, resolved at snapshot build (admin → database → local)


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
