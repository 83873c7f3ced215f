"""AWS Bedrock Runtime, Converse and ConverseStream.

URL: {base}/model/{modelId}/converse[-stream], base = the provider's base_url (a
VPC endpoint, a test fake) or https://bedrock-runtime.{region}.amazonaws.com.
The model id (foundation model, inference profile id such as
"us.anthropic.claude-sonnet-4-5-20250929-v1:0", or an ARN) is percent-encoded in
the path, signed that way and sent byte for byte (UpstreamRequest.encoded_url;
the gateway's upstream client sends the path exactly as given, so the signature holds).

Every request is SigV4-signed by botocore (providers/aws.py) right before it is
sent, with the provider's own keys or the standard AWS chain (environment,
shared config/profile, SSO, container/instance roles). The chain is resolved once
per process and provider in a worker thread and then reused; refreshable
credentials refresh in a worker thread too, so the event loop never waits on
STS or instance metadata.

Bedrock is never a client format: requests are always translated.
"""

from __future__ import annotations

import asyncio
import os

import orjson

from providers.aws import sign_request
from providers.codecs.bedrock_converse import converse_path, runtime_endpoint
from providers.codecs.errors import GatewayError
from providers.config import ProviderInfo

from .base import Adapter, UpstreamRequest

SERVICE = "bedrock"  # SigV4 signing name of bedrock-runtime

# (access key, profile) → botocore credentials (frozen, or refreshable from the chain)
_credentials: dict[tuple[str, str, str], object] = {}


def region_of(provider: ProviderInfo) -> str:
    return provider.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _resolve(provider: ProviderInfo):
    """Blocking: explicit keys, else botocore's chain. Returns a credentials object
    that may refresh itself (kept as is, unlike providers.aws.resolve_credentials)."""
    from botocore.credentials import Credentials

    if provider.aws_access_key_id or provider.aws_secret_access_key:
        if not (provider.aws_access_key_id and provider.aws_secret_access_key):
            raise GatewayError("bad_gateway", f"provider {provider.name}: AWS credentials need both an access key "
                                              "id and a secret access key.", 502, retryable=True)
        return Credentials(provider.aws_access_key_id, provider.aws_secret_access_key)
    import botocore.exceptions
    import botocore.session

    try:
        session = botocore.session.Session(profile=provider.aws_profile or None)
        credentials = session.get_credentials()
    except botocore.exceptions.BotoCoreError as exc:
        raise GatewayError("bad_gateway", f"provider {provider.name}: could not resolve AWS credentials: {exc}",
                           502, retryable=True) from None
    if credentials is None:
        raise GatewayError("bad_gateway", f"provider {provider.name} has no AWS credentials (none on the provider, "
                                          "in the environment or in the shared config"
                                          + (f" profile {provider.aws_profile!r}" if provider.aws_profile else "")
                                          + ").", 502, retryable=True)
    return credentials


async def credentials_for(provider: ProviderInfo):
    """Frozen credentials for signing one request."""
    key = (provider.aws_access_key_id, provider.aws_secret_access_key, provider.aws_profile)
    credentials = _credentials.get(key)
    if credentials is None:
        # Failures are not cached: fixing the environment or the provider takes effect at once.
        credentials = _credentials[key] = await asyncio.to_thread(_resolve, provider)
    refresh_needed = getattr(credentials, "refresh_needed", None)
    if refresh_needed is not None and refresh_needed():
        return await asyncio.to_thread(credentials.get_frozen_credentials)
    return credentials.get_frozen_credentials()


class BedrockAdapter(Adapter):
    wire_formats = ("bedrock_converse",)
    endpoints = ("generate",)

    def url(self, provider: ProviderInfo, model: str, endpoint: str, wire_format: str, stream: bool) -> str:
        base = provider.base_url.rstrip("/") or runtime_endpoint(region_of(provider))
        return base + converse_path(model, stream)

    def prepare_body(self, provider: ProviderInfo, model: str, body: dict, endpoint: str, wire_format: str,
                     stream: bool) -> dict:
        return body  # the model id is in the URL, not the body

    def build(self, provider, model, body, endpoint, wire_format, stream, dumps,
              client_headers=None) -> UpstreamRequest:
        request = super().build(provider, model, body, endpoint, wire_format, stream, dumps, client_headers)
        request.encoded_url = True
        if stream:
            request.headers["accept"] = "application/vnd.amazon.eventstream"
        return request

    async def send(self, client, request: UpstreamRequest, provider: ProviderInfo):
        credentials = await credentials_for(provider)
        request.headers = sign_request(request.method, request.url, request.headers, request.content,
                                       region=region_of(provider), service=SERVICE, credentials=credentials)
        return await super().send(client, request, provider)

    def decode_error(self, codec, status: int, raw: bytes, headers) -> GatewayError:
        # The exception name travels in x-amzn-ErrorType ("ThrottlingException:http://…"),
        # the body has only {"message"}: hand the codec both.
        error_type = (headers.get("x-amzn-errortype") or "").split(":")[0]
        if error_type:
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                data = None
            if isinstance(data, dict) and "__type" not in data:
                raw = orjson.dumps({**data, "__type": error_type})
        return codec.decode_error(status, raw)
