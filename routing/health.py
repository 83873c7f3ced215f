"""Active health checks: one cheap probe per provider, recorded in ProviderHealth.

Probe kinds (setting GATEWAY_HEALTH_PROBE, environment variable of the same name,
default "models"):
    models      list the models: GET {base}/models (openai), GET {base}/key (openrouter,
                whose model list is public and would not check the key),
                GET {root}/openai/models?api-version=… or {root}/openai/v1/models (azure,
                the adapter's two URL schemes), GET {base}/v1/models (anthropic),
                GET {base}/api/tags (ollama). Free and fast.
    completion  a 1-token completion of the provider's default model (falls back to
                "models" when the provider has none). Catches a dead model or Azure
                deployment behind a live API, at the price of a token per probe.
Bedrock is not probed (SigV4 and no cheap listing on the runtime endpoint): its
status stays "unknown", which routing treats as healthy.

Status: down when the probe fails (connect error, timeout, non-2xx); degraded when it
succeeds but took more than SLOW_SECONDS or the error rate over recent probes (EWMA)
is above DEGRADED_ERROR_RATE; else up. The worker has no view of live traffic; the
gateway processes add passive health in-process (routing.stats).
"""

from __future__ import annotations

import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.utils import timezone

log = logging.getLogger("junction.health")

PROBE_KINDS = ("models", "completion")
SLOW_SECONDS = 5.0
DEGRADED_ERROR_RATE = 0.2
ALPHA = 0.2  # EWMA weight of the newest probe (latency and error rate)
TIMEOUT = httpx.Timeout(10.0, connect=3.0)
AZURE_API_VERSION = "2024-10-21"
ANTHROPIC_VERSION = "2023-06-01"
PROBE_WORKERS = 8


def probe_kind() -> str:
    kind = getattr(settings, "GATEWAY_HEALTH_PROBE", None) or os.environ.get("GATEWAY_HEALTH_PROBE") or "models"
    return kind if kind in PROBE_KINDS else "models"


@dataclass(slots=True)
class ProbeResult:
    ok: bool | None  # None: not probed (status unknown)
    latency_ms: float | None = None
    status_code: int | None = None
    error: str = ""


def probe_provider(provider, *, kind: str | None = None, client: httpx.Client | None = None) -> ProbeResult:
    """Synchronous, bounded by TIMEOUT. `provider` is a providers.models.Provider."""
    return _send(provider, _request(provider, kind or probe_kind()), client)


def _send(provider, request, client: httpx.Client | None) -> ProbeResult:
    if request is None:
        reason = "bedrock providers are not probed" if provider.type == "bedrock" else "no base URL configured"
        return ProbeResult(None, error=reason)
    method, url, headers, body = request
    options = {}
    if getattr(provider, "proxy", "") or getattr(provider, "ca_bundle", ""):
        from providers.http import httpx_options

        try:  # the shared client has neither: this provider gets its own
            options = httpx_options(provider)
        except OSError as exc:
            return ProbeResult(False, None, None,
                               f"CA bundle {provider.ca_bundle}: {type(exc).__name__}: {exc}")
    own = client is None or bool(options)
    client = httpx.Client(timeout=TIMEOUT, follow_redirects=False, **options) if own else client
    started = time.perf_counter()
    try:
        response = client.request(method, url, headers=headers, json=body)
        latency = (time.perf_counter() - started) * 1000
        if response.status_code >= 400:
            detail = _detail(response)
            return ProbeResult(False, latency, response.status_code,
                               _scrub(f"HTTP {response.status_code} from {method} {_path(url)}"
                                      + (f": {detail}" if detail else ""), provider))
        return ProbeResult(True, latency, response.status_code)
    except httpx.TimeoutException as exc:
        return ProbeResult(False, None, None, f"timeout ({type(exc).__name__}) on {method} {_path(url)}")
    except httpx.HTTPError as exc:
        return ProbeResult(False, None, None, _scrub(f"{type(exc).__name__} on {method} {_path(url)}: {exc}",
                                                     provider))
    finally:
        if own:
            client.close()


def _request(provider, kind: str):
    """(method, url, headers, json body), or None when the provider is not probed."""
    base = provider.effective_base_url()
    if not base or provider.type == "bedrock":
        return None
    headers = {str(k): str(v) for k, v in (provider.extra_headers or {}).items()}
    key = provider.api_key or ""
    completion = kind == "completion" and bool(provider.default_model)
    ping = [{"role": "user", "content": "ping"}]
    if provider.type == "anthropic":
        if key:
            headers["x-api-key"] = key
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
        if completion:
            return "POST", base + "/v1/messages", headers, {"model": provider.default_model, "max_tokens": 1,
                                                             "messages": ping}
        return "GET", base + "/v1/models", headers, None
    if provider.type == "ollama":
        if key:
            headers["authorization"] = "Bearer " + key
        if completion:
            return "POST", base + "/api/chat", headers, {"model": provider.default_model, "messages": ping,
                                                          "stream": False, "options": {"num_predict": 1}}
        return "GET", base + "/api/tags", headers, None
    if provider.type == "azure":
        return _azure_request(provider, base, headers, key, completion, ping)
    # openai, openrouter and any OpenAI-compatible server: base_url includes /v1
    if key:
        headers["authorization"] = "Bearer " + key
    if completion:
        return "POST", base + "/chat/completions", headers, {"model": provider.default_model, "messages": ping,
                                                             "max_tokens": 1}
    if provider.type == "openrouter" and key:
        return "GET", base + "/key", headers, None  # its model list is public: /key checks the key too
    return "GET", base + "/models", headers, None


def _azure_request(provider, base: str, headers: dict, key: str, completion: bool, ping: list):
    """The same two URL schemes as providers.adapters.azure: v1 (api_version v1/preview/latest or a
    base_url ending in /openai/v1) or deployments with a dated api-version."""
    if key.startswith("eyJ"):  # a Microsoft Entra access token, not a resource key
        headers["authorization"] = "Bearer " + key
    elif key:
        headers["api-key"] = key
    root = base
    for suffix in ("/openai/v1", "/openai"):
        if root.endswith(suffix):
            root = root[: -len(suffix)]
            break
    version = (provider.api_version or "").lower()
    if version in ("v1", "preview", "latest") or base.endswith("/openai/v1"):
        query = f"?api-version={version}" if version in ("preview", "latest") else ""
        if completion:
            return ("POST", f"{root}/openai/v1/chat/completions{query}", headers,
                    {"model": _azure_deployment(provider), "messages": ping, "max_tokens": 1})
        return "GET", f"{root}/openai/v1/models{query}", headers, None
    version = provider.api_version or AZURE_API_VERSION
    if completion:
        return ("POST", f"{root}/openai/deployments/{_azure_deployment(provider)}/chat/completions"
                        f"?api-version={version}", headers, {"messages": ping, "max_tokens": 1})
    return "GET", f"{root}/openai/models?api-version={version}", headers, None


def _azure_deployment(provider) -> str:
    model = provider.models.filter(model_id=provider.default_model).exclude(deployment="").first()
    return model.deployment if model else provider.default_model


def _path(url: str) -> str:
    """Path only: no host details beyond what the admin configured, never a query string."""
    return httpx.URL(url).path


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
    return str(message)[:200] if message else ""


_SECRETISH = re.compile(r"(?i)(sk-|jk-|key=|token=|bearer\s+)[\w\-.~+/=]{6,}")


def _scrub(text: str, provider) -> str:
    key = provider.api_key or ""
    if len(key) >= 4:
        text = text.replace(key, "***")
    return _SECRETISH.sub(lambda m: m.group(1) + "***", text)[:500]


# ---------------------------------------------------------------------- recording

def status_for(result: ProbeResult, error_rate: float) -> str:
    if result.ok is None:
        return "unknown"
    if not result.ok:
        return "down"
    if (result.latency_ms or 0) > SLOW_SECONDS * 1000 or error_rate > DEGRADED_ERROR_RATE:
        return "degraded"
    return "up"


def record_probe(provider, result: ProbeResult) -> tuple[str, str]:
    """Update (or create) the provider's ProviderHealth row; returns (old status, new status)."""
    from .models import ProviderHealth

    health, _ = ProviderHealth.objects.get_or_create(provider=provider)
    old = health.status
    if result.ok is not None:
        failed = 0.0 if result.ok else 1.0
        health.error_rate = round(health.error_rate + ALPHA * (failed - health.error_rate), 4)
        if result.ok and result.latency_ms is not None:
            health.latency_ms = round(result.latency_ms if health.latency_ms is None
                                      else health.latency_ms + ALPHA * (result.latency_ms - health.latency_ms), 1)
    health.status = status_for(result, health.error_rate)
    health.last_error = result.error
    health.circuit_state = "open" if health.status == "down" else "closed"
    health.checked_at = timezone.now()
    health.save()
    return old, health.status


def check_providers(provider_ids: list[int] | None = None, *, kind: str | None = None) -> dict[str, tuple[str, str]]:
    """Probe every enabled provider (or those of `provider_ids`) concurrently and record the
    results. Returns {provider name: (old status, new status)}."""
    from django.db import close_old_connections

    from providers.models import Provider

    providers = Provider.objects.filter(enabled=True)
    if provider_ids is not None:
        providers = providers.filter(id__in=provider_ids)
    providers = list(providers)
    if not providers:
        return {}
    kind = kind or probe_kind()
    requests = [_request(p, kind) for p in providers]  # may query (Azure deployments): in this thread
    with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
        with ThreadPoolExecutor(max_workers=min(PROBE_WORKERS, len(providers))) as pool:
            # Only the HTTP calls run in threads: one slow provider does not delay the others.
            results = list(pool.map(lambda pr: _send(pr[0], pr[1], client), zip(providers, requests)))
    changes = {}
    for provider, result in zip(providers, results):
        old, new = changes[provider.name] = record_probe(provider, result)
        if old != new:  # once per change, not on every check (every 30 s) while it stays down
            detail = f": {result.error}" if result.error and new != "unknown" else ""
            level = logging.WARNING if new in ("down", "degraded") else logging.INFO
            log.log(level, "provider %s is %s (was %s)%s", provider.name, new, old, detail)
    close_old_connections()
    return changes
