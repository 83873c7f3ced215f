"""OpenRouter: OpenAI chat completions plus its conventions
(base_url https://openrouter.ai/api/v1).

- Attribution headers (`HTTP-Referer`, `X-Title`) name the app on OpenRouter's
  rankings; a provider's extra_headers override them.
- `usage: {include: true}` asks for usage accounting, whose `usage.cost` (the
  real charge) the gateway records instead of a price-table estimate. OpenRouter
  now always includes it; the flag stays for deployments and OpenRouter-compatible
  servers that still need it.
- Provider-preference fields (`provider`, `models`, `route`, `transforms`) ride
  along untouched on same-format passthrough.
- Errors `{"error": {"code": 402, "message", "metadata"}}` and mid-stream error
  chunks (`error` + finish_reason "error") are read by the openai_chat codec and
  the stream tap. A 402 (out of credits) moves on to the next target but is not
  retried on this one (code `upstream_credits`): waiting does not refill a wallet.
"""

from __future__ import annotations

from providers.config import ProviderInfo

from providers.codecs.errors import GatewayError

from .base import UpstreamRequest
from .openai import OpenAICompatibleAdapter

ATTRIBUTION = {"HTTP-Referer": "http://localhost", "X-Title": "Junction"}


class OpenRouterAdapter(OpenAICompatibleAdapter):
    def prepare_body(self, provider: ProviderInfo, model: str, body: dict, endpoint: str, wire_format: str,
                     stream: bool) -> dict:
        body = super().prepare_body(provider, model, body, endpoint, wire_format, stream)
        if endpoint == "generate":
            usage = body.get("usage")
            body["usage"] = {**usage, "include": True} if isinstance(usage, dict) else {"include": True}
        return body

    def build(self, provider, model, body, endpoint, wire_format, stream, dumps,
              client_headers=None) -> UpstreamRequest:
        request = super().build(provider, model, body, endpoint, wire_format, stream, dumps, client_headers)
        present = {name.lower() for name in request.headers}
        for name, value in ATTRIBUTION.items():
            if name.lower() not in present:  # extra_headers may spell them in any case
                request.headers[name] = value
        return request

    def decode_error(self, codec, status: int, raw: bytes, headers) -> GatewayError:
        error = super().decode_error(codec, status, raw, headers)
        if status == 402:
            error.retryable, error.code = True, "upstream_credits"
        return error
