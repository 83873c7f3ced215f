"""Small helpers around botocore for the Bedrock upstream: SigV4 signing, the
standard credential chain and the `application/vnd.amazon.eventstream` decoder.

No hand-written crypto or framing here: signing is botocore.auth.SigV4Auth, the
credential chain is botocore's session, and frames are parsed (and CRC-checked)
by botocore.eventstream.EventStreamBuffer. Pure Python, no Django.
"""

from __future__ import annotations

import struct
from typing import Any, Mapping

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.eventstream import EventStreamBuffer, ParserError

import orjson

from .codecs.errors import GatewayError

__all__ = ["sign_request", "resolve_credentials", "EventStreamDecoder", "EventStreamDecodeError"]


# --------------------------------------------------------------------------- signing


def sign_request(method: str, url: str, headers: Mapping[str, str] | None, body: bytes | str | None, *,
                 region: str, service: str = "bedrock", credentials: Any) -> dict[str, str]:
    """Return `headers` plus the SigV4 headers (`X-Amz-Date`, `Authorization`,
    `X-Amz-Security-Token` with session credentials) for this exact request.

    `url` must be the URL as it will go on the wire (path already percent-encoded,
    e.g. `/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse`); botocore
    applies SigV4's second round of encoding for the canonical request itself.
    The Host header is derived from the URL (and must match what the HTTP client
    sends: the gateway's upstream client sends the URL's host[:port], as httpx
    does). The path must go out byte for byte as signed: the gateway's client and
    httpx keep it; aiohttp/yarl would re-quote it (`%3A` -> `:`). `credentials` is anything with access_key /
    secret_key / token (a botocore Credentials, refreshable ones included, or the
    frozen ReadOnlyCredentials that `resolve_credentials` returns).
    """
    if credentials is None:
        raise GatewayError("authentication", "No AWS credentials configured for this provider.", 500)
    frozen = credentials.get_frozen_credentials() if hasattr(credentials, "get_frozen_credentials") else credentials
    if isinstance(body, str):
        body = body.encode("utf-8")
    request = AWSRequest(method=method.upper(), url=url, headers=dict(headers or {}), data=body or b"")
    SigV4Auth(frozen, service, region).add_auth(request)
    return dict(request.headers.items())


def resolve_credentials(access_key_id: str | None = None, secret_access_key: str | None = None,
                        session_token: str | None = None, profile: str | None = None) -> ReadOnlyCredentials:
    """Explicit keys if given, else botocore's standard chain (env vars, shared
    config/credentials files with `profile`, SSO, container/instance metadata...).

    Returns *frozen* credentials (a snapshot). Temporary credentials from the
    chain (SSO, assume-role, instance roles) expire: call this again when the
    provider config is rebuilt, or pass the refreshable object from
    `botocore.session.Session().get_credentials()` to `sign_request` directly.
    """
    if access_key_id or secret_access_key:
        if not (access_key_id and secret_access_key):
            raise GatewayError("authentication", "AWS credentials need both an access key id and a secret access key.", 500)
        return Credentials(access_key_id, secret_access_key, session_token).get_frozen_credentials()

    import botocore.exceptions
    import botocore.session

    try:
        session = botocore.session.Session(profile=profile) if profile else botocore.session.Session()
        creds = session.get_credentials()
    except botocore.exceptions.BotoCoreError as exc:  # ProfileNotFound, bad config files, SSO errors...
        raise GatewayError("authentication", "Could not resolve AWS credentials: %s" % exc, 500) from exc
    if creds is None:
        raise GatewayError("authentication", "No AWS credentials found (explicit keys, environment, profile%s)."
                           % (" %r" % profile if profile else ""), 500)
    return creds.get_frozen_credentials()


# --------------------------------------------------------------------------- event stream


class EventStreamDecodeError(ValueError):
    """The bytes are not a valid event stream (bad prelude/CRC, oversized frame)."""


class EventStreamDecoder:
    """Incremental `application/vnd.amazon.eventstream` decoder.

    feed(bytes) -> [(event_type, message_type, payload)], where
      message_type "event":     event_type is the `:event-type` header (messageStart, contentBlockDelta...)
      message_type "exception": event_type is the `:exception-type` header (throttlingException...)
      message_type "error":     event_type is the `:error-code` header, payload {"message": `:error-message`}
    and payload is the decoded JSON object ({"message": text} when the payload is not JSON).
    Any byte chunking is fine; frames are CRC-checked by botocore.
    """

    __slots__ = ("_buffer", "_failed", "_buffered")

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()
        self._failed = False
        self._buffered = 0  # bytes fed but not yet consumed by a complete frame

    def feed(self, chunk: bytes) -> list[tuple[str, str, dict]]:
        if self._failed:
            raise EventStreamDecodeError("event stream already failed")
        if chunk:
            self._buffer.add_data(chunk)
            self._buffered += len(chunk)
        out: list[tuple[str, str, dict]] = []
        try:
            for message in self._buffer:
                self._buffered -= message.prelude.total_length
                out.append(self._convert(message.headers, message.payload))
        except (ParserError, KeyError, IndexError, ValueError, struct.error) as exc:
            # ParserError: bad prelude/CRC/size; the others: a CRC-valid frame with malformed headers.
            self._failed = True
            raise EventStreamDecodeError(str(exc)) from exc
        return out

    def pending(self) -> bool:
        """True when a partial frame is buffered (the stream was cut mid-frame)."""
        return self._buffered > 0

    @staticmethod
    def _convert(headers: dict, payload: bytes) -> tuple[str, str, dict]:
        message_type = str(headers.get(":message-type") or "event")
        if message_type == "exception":
            event_type = str(headers.get(":exception-type") or "")
        elif message_type == "error":
            return (str(headers.get(":error-code") or "error"), "error",
                    {"message": str(headers.get(":error-message") or "")})
        else:
            event_type = str(headers.get(":event-type") or "")
        data: Any = None
        if payload:
            try:
                data = orjson.loads(payload)
            except ValueError:
                data = None
        if not isinstance(data, dict):
            data = {"message": payload.decode("utf-8", "replace")} if payload else {}
        return event_type, message_type, data
