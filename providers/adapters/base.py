"""Provider adapters: one per provider type. An adapter owns the upstream URLs,
authentication and dialect quirks; the body format is its `wire_format` codec's.

Transport failures become a GatewayError that says whether trying another
candidate makes sense (`retryable`), like healthchecks' TransportError.
"""

from __future__ import annotations

from dataclasses import dataclass

from providers.upstream_client import Client, Response, UpstreamConnectError, UpstreamConnectTimeout, \
    UpstreamProtocolError, UpstreamTimeout
from providers.codecs.errors import GatewayError
from providers.config import ProviderInfo


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict
    content: bytes
    #: the URL is already percent-encoded and must go out byte for byte (SigV4-signed paths)
    encoded_url: bool = False


class Adapter:
    """Base class. Subclasses set `wire_formats` (the formats the provider speaks
    natively, preferred first) and override `url` / `auth_headers`, and
    `prepare_body` when the provider needs extra fields.

    Endpoint kinds: "generate" (the format's generation call: chat completions,
    messages, responses, /api/chat …), "embeddings", "count_tokens", "models".
    """

    wire_formats: tuple[str, ...] = ("openai_chat",)
    endpoints: tuple[str, ...] = ("generate",)
    #: client headers passed upstream when the client speaks the upstream's format
    passthrough_headers: tuple[bytes, ...] = ()
    #: the client's query string goes upstream too when the client speaks the upstream's format
    passthrough_query: bool = False

    def wire_format_for(self, client_format: str, provider: ProviderInfo) -> str:
        formats = self.wire_formats
        if provider.wire_api == "chat" and "openai_chat" in formats:
            return "openai_chat"
        if provider.wire_api == "responses" and "openai_responses" in formats:
            return "openai_responses"
        return client_format if client_format in formats else formats[0]

    def url(self, provider: ProviderInfo, model: str, endpoint: str, wire_format: str, stream: bool) -> str:
        raise NotImplementedError

    def auth_headers(self, provider: ProviderInfo) -> dict:
        return {}

    def prepare_body(self, provider: ProviderInfo, model: str, body: dict, endpoint: str, wire_format: str,
                     stream: bool) -> dict:
        body["model"] = model
        return body

    def adapt_response(self, endpoint: str, obj: dict, client_body: dict) -> dict:
        """Non-generation endpoints (embeddings …): turn the upstream's JSON into the
        client's (OpenAI) shape. Return `obj` itself when nothing changes."""
        return obj

    def decode_error(self, codec, status: int, raw: bytes, headers) -> GatewayError:
        """An upstream error response → GatewayError. Override where the provider puts
        meaning outside the format's error body (headers, provider-specific codes)."""
        return codec.decode_error(status, raw)

    def build(self, provider: ProviderInfo, model: str, body: dict, endpoint: str, wire_format: str,
              stream: bool, dumps,
              client_headers: list[tuple[bytes, bytes]] | None = None) -> UpstreamRequest:
        body = self.prepare_body(provider, model, body, endpoint, wire_format, stream)
        headers = {"content-type": "application/json", "accept-encoding": "identity"}
        if client_headers and self.passthrough_headers:
            for name, value in client_headers:
                if name in self.passthrough_headers:
                    headers[name.decode()] = value.decode("latin-1")
        headers.update(self.auth_headers(provider))
        headers.update(provider.extra_headers)
        return UpstreamRequest("POST", self.url(provider, model, endpoint, wire_format, stream), headers,
                               dumps(body))

    def add_query(self, request: UpstreamRequest, query: bytes) -> None:
        """Same-format passthrough: append the client's query string where the provider takes it."""
        if query and self.passthrough_query:
            request.url += ("&" if "?" in request.url else "?") + query.decode("latin-1")

    async def send(self, client: Client, request: UpstreamRequest,
                   provider: ProviderInfo) -> "UpstreamResponse":
        """Send on `client` (the gateway's pooled upstream client, gateway.state) and
        return once response headers arrived (body not read yet). The provider's
        first-token timeout bounds the wait for the first byte and every stall after
        it; its connect timeout bounds the connection. Its `proxy` (empty: the
        environment's HTTPS_PROXY/HTTP_PROXY/NO_PROXY) and `ca_bundle` apply."""
        try:
            response = await client.request(
                request.method, request.url, request.headers, request.content,
                connect_timeout=provider.connect_timeout, read_timeout=provider.first_token_timeout,
                proxy=provider.proxy, ca_bundle=provider.ca_bundle)
        except UpstreamConnectTimeout as exc:
            raise Undelivered("timeout", f"upstream {provider.name} timed out ({exc})", 504,
                              retryable=True) from None
        except UpstreamTimeout as exc:
            raise GatewayError("timeout", f"upstream {provider.name} timed out ({exc})", 504,
                               retryable=True) from None
        except UpstreamConnectError as exc:
            raise Undelivered("bad_gateway", f"upstream {provider.name} unreachable: {str(exc)[:200]}", 502,
                              retryable=True) from None
        except UpstreamProtocolError as exc:
            raise GatewayError("bad_gateway", f"upstream {provider.name} unreachable: {str(exc)[:200]}", 502,
                               retryable=True) from None
        return UpstreamResponse(response, provider.name)


class Undelivered(GatewayError):
    """The request never reached the provider (connection refused or timed out, DNS, TLS,
    proxy): the provider processed nothing, so the attempt is not billed (issue 9)."""


class UpstreamResponse:
    """A view of an upstream response that turns transport failures into
    GatewayErrors (retryable: the caller decides whether it may still fall back)."""

    __slots__ = ("_response", "_name", "status", "headers", "resends")

    def __init__(self, response: Response, name: str) -> None:
        self._response = response
        self._name = name
        self.status = response.status
        self.headers = response.headers  # case-insensitive
        #: times the request went out on another connection because its pooled connection
        #: was found closed before anything was written (never after: see providers/http.py)
        self.resends = response.resends

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except UpstreamTimeout:
            raise GatewayError("timeout", f"upstream {self._name} timed out while sending its response", 504,
                               retryable=True) from None
        except UpstreamProtocolError as exc:
            raise GatewayError("bad_gateway", f"upstream {self._name} broke off its response: {exc}", 502,
                               retryable=True) from None

    async def chunks(self):
        """Body chunks as they arrive."""
        try:
            async for chunk in self._response.chunks():
                yield chunk
        except UpstreamTimeout:
            raise GatewayError("timeout", f"upstream {self._name} stalled (no bytes within its first-token "
                                          f"timeout)", 504, retryable=True) from None
        except UpstreamProtocolError as exc:
            raise GatewayError("bad_gateway", f"upstream {self._name} broke off the stream: {exc}", 502,
                               retryable=True) from None

    def close(self) -> None:
        # An unfinished response closes its connection (it is not returned to the
        # pool), which is what tells the provider to stop generating.
        self._response.close()
