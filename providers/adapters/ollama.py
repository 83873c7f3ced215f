"""Ollama's native API (base_url is the host root, e.g. http://localhost:11434).

Generation goes to /api/chat (NDJSON streams; the ollama codec), embeddings to
/api/embed with the OpenAI request and answer mapped here, discovery reads
/api/tags (providers/discovery.py).
"""

from __future__ import annotations

import base64
import struct
from urllib.parse import urlsplit

from providers.codecs import get_codec
from providers.codecs.errors import GatewayError, UnsupportedFeature
from providers.config import ProviderInfo

from .base import Adapter

PATHS = {"generate": "/api/chat", "embeddings": "/api/embed", "models": "/api/tags"}
# /api/embed fields an OpenAI-shaped client may still send on purpose.
_EMBED_EXTRAS = ("truncate", "keep_alive", "options", "dimensions")


class OllamaAdapter(Adapter):
    wire_formats = ("ollama",)
    endpoints = ("generate", "embeddings", "models")

    def url(self, provider: ProviderInfo, model: str, endpoint: str, wire_format: str, stream: bool) -> str:
        return provider.base_url + PATHS[endpoint]

    def auth_headers(self, provider: ProviderInfo) -> dict:
        # A local Ollama needs none; one behind an authenticating proxy (or Ollama's
        # own cloud) takes a bearer token.
        return {"authorization": "Bearer " + provider.api_key} if provider.api_key else {}

    def prepare_body(self, provider: ProviderInfo, model: str, body: dict, endpoint: str, wire_format: str,
                     stream: bool) -> dict:
        if endpoint == "embeddings":
            return embed_request(model, body)
        body["model"] = model
        body["stream"] = stream  # explicit: Ollama streams when the field is absent
        return body

    def adapt_response(self, endpoint: str, obj: dict, client_body: dict) -> dict:
        if endpoint == "embeddings":
            return embed_response(obj, client_body)
        return obj

    def decode_error(self, codec, status: int, raw: bytes, headers) -> GatewayError:
        # Embeddings travel in the client's (OpenAI) format, but errors are Ollama's own.
        return get_codec("ollama").decode_error(status, raw)


def embed_request(model: str, body: dict) -> dict:
    """OpenAI embeddings request → /api/embed request."""
    inputs = body.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    if not all(isinstance(item, str) for item in items):
        raise UnsupportedFeature("Ollama embeds text only: send `input` as a string or an array of strings, "
                                 "not token ids.")
    out = {"model": model, "input": inputs}
    out.update({k: body[k] for k in _EMBED_EXTRAS if body.get(k) is not None})
    return out


def embed_response(obj: dict, client_body: dict) -> dict:
    """/api/embed answer → OpenAI embeddings answer (base64 when the client asked,
    as the official OpenAI SDKs do by default)."""
    vectors = obj.get("embeddings")
    if not isinstance(vectors, list) or not all(isinstance(v, list) for v in vectors):
        raise GatewayError("bad_gateway", "upstream Ollama answered /api/embed without `embeddings`.", 502,
                           retryable=True)
    as_base64 = client_body.get("encoding_format") == "base64"
    data = [{"object": "embedding", "index": i,
             "embedding": _float32_base64(vector) if as_base64 else vector}
            for i, vector in enumerate(vectors)]
    tokens = int(obj.get("prompt_eval_count") or 0)
    return {"object": "list", "data": data, "model": obj.get("model") or client_body.get("model", ""),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _float32_base64(vector: list) -> str:
    return base64.b64encode(struct.pack("<%df" % len(vector), *vector)).decode()


def host_url(value: str) -> str:
    """OLLAMA_HOST → base URL, read the way the ollama CLI reads it: "host",
    "host:port", ":port", "scheme://host[:port]"; port 11434 unless a scheme is
    given (then 80/443). The bind-all addresses mean this machine for a client."""
    value = value.strip()
    scheme, sep, rest = value.partition("://")
    if sep:
        default_port = 443 if scheme == "https" else 80
    else:
        scheme, rest, default_port = "http", value, 11434
    hostport = rest.split("/", 1)[0]
    parsed = urlsplit("//" + hostport)
    try:
        port = parsed.port or default_port
    except ValueError:
        port = default_port
    host = parsed.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
