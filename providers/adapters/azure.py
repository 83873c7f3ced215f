"""Azure OpenAI (base_url: the resource root, https://<resource>.openai.azure.com).

Two URL schemes (Azure OpenAI API lifecycle docs, checked 2026-11-25):
- deployments (dated api-version, the long-standing scheme):
  {root}/openai/deployments/{deployment}/chat/completions?api-version=2024-10-21
  (and …/embeddings). The deployment is ProviderModel.deployment for the model,
  else the model id itself.
- v1 (GA since August 2025, no api-version): {root}/openai/v1/chat/completions,
  …/responses, …/embeddings, with the deployment name as `model` in the body.
  Chosen when api_version is "v1" or base_url ends with /openai/v1; "preview" or
  "latest" pick it too and are sent as ?api-version= (the v1 preview needed it).
The Responses API exists only on the v1 scheme, so Responses requests always go there.

Auth: `api-key: <key>`, or `Authorization: Bearer <token>` when the key is a
Microsoft Entra access token (a JWT: it starts with "eyJ").

Content filtering: a blocked prompt is HTTP 400 with error.code "content_filter"
and innererror.content_filter_result per category; it becomes a plain,
non-retryable client error naming the categories (another provider would not make
the prompt acceptable here, and silently sending it elsewhere would sidestep the
customer's own policy). A filtered completion is a normal 200 with finish_reason
"content_filter", relayed as such (a refusal once translated).
"""

from __future__ import annotations

from urllib.parse import quote

import orjson

from providers.codecs.errors import GatewayError
from providers.config import ProviderInfo

from .openai import OpenAIAdapter

DEFAULT_API_VERSION = "2024-10-21"
V1_VERSIONS = ("v1", "preview", "latest")
OPERATIONS = {("generate", "openai_chat"): "chat/completions", ("generate", "openai_responses"): "responses",
              ("embeddings", "openai_chat"): "embeddings"}


def resource_root(base_url: str) -> str:
    root = base_url.rstrip("/")
    for suffix in ("/openai/v1", "/openai"):
        if root.endswith(suffix):
            return root[: -len(suffix)]
    return root


def uses_v1(provider: ProviderInfo) -> bool:
    return provider.api_version.lower() in V1_VERSIONS or provider.base_url.rstrip("/").endswith("/openai/v1")


def deployment_for(provider: ProviderInfo, model: str) -> str:
    info = provider.model_info(model)
    return info.deployment if info is not None and info.deployment else model


class AzureAdapter(OpenAIAdapter):
    wire_formats = ("openai_chat", "openai_responses")
    endpoints = ("generate", "embeddings")

    def url(self, provider: ProviderInfo, model: str, endpoint: str, wire_format: str, stream: bool) -> str:
        operation = OPERATIONS[endpoint, wire_format]
        root = resource_root(provider.base_url)
        if wire_format == "openai_responses" or uses_v1(provider):
            version = provider.api_version.lower()
            query = f"?api-version={version}" if version in ("preview", "latest") else ""
            return f"{root}/openai/v1/{operation}{query}"
        deployment = quote(deployment_for(provider, model), safe="")
        return (f"{root}/openai/deployments/{deployment}/{operation}"
                f"?api-version={provider.api_version or DEFAULT_API_VERSION}")

    def auth_headers(self, provider: ProviderInfo) -> dict:
        key = provider.api_key
        if not key:
            return {}
        if key.startswith("eyJ"):  # an Entra ID token, not a resource key
            return {"authorization": "Bearer " + key}
        return {"api-key": key}

    def prepare_body(self, provider: ProviderInfo, model: str, body: dict, endpoint: str, wire_format: str,
                     stream: bool) -> dict:
        # v1 and Responses read the deployment from `model`; the deployments path ignores it.
        return super().prepare_body(provider, deployment_for(provider, model), body, endpoint, wire_format,
                                    stream)

    def decode_error(self, codec, status: int, raw: bytes, headers) -> GatewayError:
        if status == 400:
            blocked = content_filter_categories(raw)
            if blocked is not None:
                return GatewayError("invalid_request", "Azure content filter blocked the request: "
                                    + (", ".join(blocked) or "content policy"), 400, code="content_filter")
        return codec.decode_error(status, raw)


def content_filter_categories(raw: bytes) -> list[str] | None:
    """The filtered categories of an Azure content-filter error (e.g. ["violence (medium)",
    "jailbreak"]), or None when the body is not one."""
    try:
        error = orjson.loads(raw).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(error, dict):
        return None
    inner = error.get("innererror") if isinstance(error.get("innererror"), dict) else {}
    if error.get("code") != "content_filter" and inner.get("code") != "ResponsibleAIPolicyViolation":
        return None
    results = inner.get("content_filter_result") or inner.get("content_filter_results") or {}
    blocked = []
    for category, result in results.items() if isinstance(results, dict) else ():
        if isinstance(result, dict) and result.get("filtered"):
            severity = result.get("severity")
            blocked.append(f"{category} ({severity})" if severity and severity != "safe" else category)
    return blocked
