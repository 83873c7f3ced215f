"""Model discovery: ask a provider which models it serves (reads only; the rows
are written by services.provider_models_sync). Off the hot path, so plain
synchronous httpx (and botocore for Bedrock's control plane).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx

from .http import httpx_options
from .models import Provider, ProviderType
from .pricing import FREE, Price, lookup

TIMEOUT = 20.0
ANTHROPIC_VERSION = "2023-06-01"
# OpenAI ids that are not text models (images, speech, moderation …): not worth a row.
NOT_TEXT = ("dall-e", "tts", "whisper", "davinci", "babbage", "moderation", "gpt-image", "sora", "realtime",
            "transcribe", "audio", "computer-use")


class DiscoveryError(Exception):
    """The provider's models could not be listed; the message says why, for the admin."""


@dataclass(slots=True)
class Discovered:
    model_id: str
    context_window: int | None = None
    price: Price | None = None  # what the provider itself reports (OpenRouter), else the price database


def discover(provider: Provider) -> list[Discovered]:
    kind = provider.type
    if kind == ProviderType.OLLAMA:
        return _ollama(provider)
    if kind == ProviderType.ANTHROPIC:
        return _anthropic(provider)
    if kind in (ProviderType.OPENAI, ProviderType.OPENROUTER):
        return _openai_compatible(provider)
    if kind == ProviderType.AZURE:
        raise DiscoveryError(
            "Azure OpenAI deployments cannot be listed with an API key (that takes the Azure management API "
            "and an Entra identity with rights on the resource). Add a ProviderModel per deployment in the "
            "admin: the model id clients use and, if it differs, the deployment name.")
    if kind == ProviderType.BEDROCK:
        return _bedrock(provider)
    raise DiscoveryError(f"model discovery is not available for provider type `{kind}`")


def price_for(provider: Provider, found: Discovered) -> Price | None:
    if provider.type == ProviderType.OLLAMA:
        return FREE  # local models cost nothing
    return found.price or lookup(found.model_id, provider.type)


# --------------------------------------------------------------------------- HTTP providers


def _get(provider: Provider, url: str, headers: dict, params: dict | None = None) -> dict:
    headers = {**headers, **{str(k): str(v) for k, v in (provider.extra_headers or {}).items()}}
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=True, **httpx_options(provider)) as client:
            response = client.get(url, headers=headers, params=params)
    except (httpx.HTTPError, OSError) as exc:  # OSError: the provider's CA bundle is unreadable
        raise DiscoveryError(f"could not reach {url}: {type(exc).__name__}: {exc}") from None
    if response.status_code >= 400:
        raise DiscoveryError(f"{url} answered HTTP {response.status_code}: {response.text[:300]}")
    try:
        data = response.json()
    except ValueError:
        raise DiscoveryError(f"{url} did not answer JSON: {response.text[:120]!r}") from None
    if not isinstance(data, dict):
        raise DiscoveryError(f"{url} answered an unexpected shape: {response.text[:120]!r}")
    return data


def _ollama(provider: Provider) -> list[Discovered]:
    headers = {"authorization": "Bearer " + provider.api_key} if provider.api_key else {}
    data = _get(provider, provider.effective_base_url() + "/api/tags", headers)
    names = [m.get("model") or m.get("name") for m in data.get("models") or [] if isinstance(m, dict)]
    return [Discovered(name) for name in names if name]


def _anthropic(provider: Provider) -> list[Discovered]:
    url = provider.effective_base_url() + "/v1/models"
    headers = {"x-api-key": provider.api_key, "anthropic-version": ANTHROPIC_VERSION}
    found, params = [], {"limit": 1000}
    while True:
        data = _get(provider, url, headers, params)
        found += [Discovered(m["id"]) for m in data.get("data") or [] if isinstance(m, dict) and m.get("id")]
        if not data.get("has_more") or not data.get("last_id"):
            return found
        params = {"limit": 1000, "after_id": data["last_id"]}


def _openai_compatible(provider: Provider) -> list[Discovered]:
    headers = {"authorization": "Bearer " + provider.api_key} if provider.api_key else {}
    data = _get(provider, provider.effective_base_url() + "/models", headers)
    found = []
    for item in data.get("data") or []:
        model_id = item.get("id") if isinstance(item, dict) else None
        if not model_id or any(word in model_id.lower() for word in NOT_TEXT):
            continue
        # OpenRouter reports its context length and per-token prices; vLLM max_model_len.
        context = item.get("context_length") or item.get("context_window") or item.get("max_model_len")
        found.append(Discovered(model_id, context if isinstance(context, int) and context > 0 else None,
                                _per_token_price(item.get("pricing"))))
    return found


def _per_token_price(pricing) -> Price | None:
    """OpenRouter `pricing` (USD per token, as strings) → USD per 1M tokens."""
    if not isinstance(pricing, dict):
        return None

    def per_million(key: str) -> float | None:
        try:
            value = float(pricing[key])
        except (KeyError, TypeError, ValueError):
            return None
        return round(value * 1_000_000, 6) if value >= 0 else None  # -1: priced per request (routers)

    prompt, completion = per_million("prompt"), per_million("completion")
    if prompt is None or completion is None:
        return None
    return Price(prompt, completion, per_million("input_cache_read"), per_million("input_cache_write"))


# --------------------------------------------------------------------------- Bedrock


def _bedrock_client(provider: Provider):
    """botocore client for Bedrock's control plane, or None when no credentials
    exist (provider keys, environment, shared config/profile …)."""
    import botocore.session

    session = botocore.session.Session(profile=provider.aws_profile or None)
    if provider.aws_access_key_id and provider.aws_secret_access_key:
        session.set_credentials(provider.aws_access_key_id, provider.aws_secret_access_key)
    if session.get_credentials() is None:
        return None
    region = provider.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint = None
    if provider.base_url and "bedrock-runtime" in provider.base_url:  # a VPC endpoint for the runtime
        endpoint = provider.base_url.replace("bedrock-runtime", "bedrock", 1)
    return session.create_client("bedrock", region_name=region, endpoint_url=endpoint)


def _bedrock(provider: Provider) -> list[Discovered]:
    import botocore.exceptions

    try:
        client = _bedrock_client(provider)
    except botocore.exceptions.BotoCoreError as exc:
        raise DiscoveryError(f"could not set up AWS credentials: {exc}") from None
    if client is None:
        raise DiscoveryError("no AWS credentials for Bedrock: set the provider's access key id and secret, or "
                             "a profile, or the standard AWS environment variables; then sync again.")
    try:
        summaries = client.list_foundation_models(byOutputModality="TEXT").get("modelSummaries") or []
        # Models offered only through inference profiles are called by the profile id (us.anthropic.…).
        found = [Discovered(m["modelId"]) for m in summaries
                 if "ON_DEMAND" in (m.get("inferenceTypesSupported") or [])]
        token = None
        while True:
            page = client.list_inference_profiles(**({"nextToken": token} if token else {}))
            found += [Discovered(p["inferenceProfileId"]) for p in page.get("inferenceProfileSummaries") or []
                      if p.get("status", "ACTIVE") == "ACTIVE"]
            token = page.get("nextToken")
            if not token:
                return found
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise DiscoveryError(f"Bedrock ListFoundationModels failed: {exc}") from None
