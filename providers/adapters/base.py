"""Provider adapters: one per provider type. An adapter owns the upstream URLs,
authentication and dialect quirks; the body format is its `wire_format` codec's.

Transport failures become a GatewayError that says whether trying another
candidate makes sense (`retryable`), like healthchecks' TransportError.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import httpx

from providers import http
from providers.codecs.errors import GatewayError
from routing.table import ProviderInfo


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict
    content: bytes


class Adapter:
    """Base class. Subclasses set `wire_format` and override `url` / `auth_headers`,
    and `prepare_body` when the provider needs extra fields."""

    wire_format: str = "openai_chat"
    #: endpoint kinds this adapter serves: chat (the format's generation call), embeddings, models
    endpoints: tuple[str, ...] = ("chat",)

    def url(self, provider: ProviderInfo, model: str, endpoint: str, stream: bool) -> str:
        raise NotImplementedError

    def auth_headers(self, provider: ProviderInfo) -> dict:
        return {}

    def prepare_body(self, provider: ProviderInfo, model: str, body: dict, endpoint: str, stream: bool) -> dict:
        return body

    def build(self, provider: ProviderInfo, model: str, body: dict, endpoint: str, stream: bool,
              dumps) -> UpstreamRequest:
        body = self.prepare_body(provider, model, body, endpoint, stream)
        headers = {"content-type": "application/json", "accept-encoding": "identity"}
        headers.update(self.auth_headers(provider))
        headers.update(provider.extra_headers)
        return UpstreamRequest("POST", self.url(provider, model, endpoint, stream), headers, dumps(body))

    async def send(self, request: UpstreamRequest, provider: ProviderInfo) -> httpx.Response:
        """Send and return once response headers arrived (body not read)."""
        timeout = httpx.Timeout(connect=provider.connect_timeout, read=provider.first_token_timeout,
                                write=provider.connect_timeout, pool=provider.connect_timeout)
        client = http.client()
        req = client.build_request(request.method, request.url, headers=request.headers, content=request.content,
                                   timeout=timeout)
        try:
            return await client.send(req, stream=True)
        except httpx.TimeoutException as exc:
            if _refused(exc):
                raise GatewayError("bad_gateway", f"upstream {provider.name} unreachable: {exc.__cause__}",
                                   502, retryable=True) from None
            raise GatewayError("timeout", f"upstream {provider.name} timed out ({type(exc).__name__})",
                               504, retryable=True) from None
        except httpx.HTTPError as exc:
            raise GatewayError("bad_gateway", f"upstream {provider.name} unreachable: {type(exc).__name__}: "
                                              f"{str(exc)[:200]}", 502, retryable=True) from None


def _refused(exc: Exception) -> bool:
    """httpx-aiohttp maps every aiohttp connection error, refused ones included, to
    ConnectTimeout; tell a refused/unresolvable host (502) from a real timeout (504)."""
    cause = exc.__cause__
    return isinstance(cause, aiohttp.ClientConnectorError) and not isinstance(cause, TimeoutError)
