"""Send a resolved request to its candidates in order and relay the answer.

Fallback rule (design.md §1): the next candidate is tried only while nothing has
been sent to the client. For streams the gateway waits for the upstream's first
body chunk before sending the client its response headers, so a provider that
fails, stalls or drops before its first token still falls back. After that, a
failure ends the stream with the client format's error event.
"""

from __future__ import annotations

import asyncio
import random
import time

import orjson
from django.conf import settings

from providers.adapters import get_adapter
from providers.adapters.base import UpstreamResponse
from providers.codecs import canonical as c
from providers.codecs import get_codec
from providers.codecs.errors import GatewayError, UnsupportedFeature
from providers.codecs.openai_chat import decode_usage
from routing.planner import larger_context_candidates
from routing.router import Candidate, Plan
from routing.stats import STATS

from .context import RequestContext
from .io import encode_headers, send_bytes
from .streams import DecoderTap, OpenAIChatTap, Translator


class Exchange:
    """One client request: its body in the client's format, lazily decoded."""

    def __init__(self, ctx: RequestContext, client_format: str, endpoint: str, body: dict, send,
                 client_headers: list[tuple[bytes, bytes]] | None = None, *, stream: bool = False) -> None:
        self.ctx = ctx
        self.client_format = client_format
        self.client_codec = get_codec(client_format)
        self.endpoint = endpoint
        self.body = body
        self.send = send
        self.stream = stream
        self.client_headers = client_headers
        self.committed = False
        self._canonical: c.Request | None = None
        self.on_response = None  # async callable(response object): Responses API conversation store

    @property
    def canonical(self) -> c.Request:
        if self._canonical is None:
            self._canonical = self.client_codec.decode_request(self.body)
        return self._canonical

    def client_wants_usage(self) -> bool:
        if self.client_format == "openai_chat":
            options = self.body.get("stream_options")
            return isinstance(options, dict) and bool(options.get("include_usage"))
        return True  # every other format always reports usage

    async def run(self, plan: Plan, decision=None, snapshot=None) -> None:
        """Try the plan's candidates in order. A retryable failure moves to the next
        candidate at once (a 429 does not wait while another target is available);
        when the chain is exhausted it is retried after an exponential backoff with
        jitter (or the upstream's retry-after), within GATEWAY_RETRIES rounds and the
        GATEWAY_RETRY_DEADLINE. A context-length error widens the chain once with
        larger-context targets."""
        candidates = list(plan.candidates)
        index, widened, rounds = 0, False, 0
        deadline = self.ctx.started + settings.GATEWAY_RETRY_DEADLINE
        last_error: GatewayError | None = None
        while True:
            if index >= len(candidates):
                wait = _backoff(rounds, last_error)
                # Another candidate may hold valid credentials, waiting will not fix ours.
                if (last_error is None or not last_error.retryable or last_error.code == "upstream_auth"
                        or rounds >= settings.GATEWAY_RETRIES
                        or time.perf_counter() + wait > deadline):
                    break
                rounds += 1
                await asyncio.sleep(wait)
                index = 0
                candidates = [c for c in candidates if STATS.available(c)] or candidates
            candidate = candidates[index]
            index += 1
            error = await self._try(candidate, decision)
            if error is None:
                return
            last_error = error
            if self.committed:
                # Too late to fall back: end the stream in the client's format.
                await self._send_stream_error(error)
                return
            if (error.type == "context_length" and not widened and snapshot is not None
                    and decision is not None and decision.context_window_fallback):
                widened = True
                tried = {(c.provider.name, c.model) for c in candidates[:index]}
                larger = [c for c in larger_context_candidates(snapshot, plan, candidate)
                          if (c.provider.name, c.model) not in tried]
                if larger:
                    candidates = candidates[:index] + larger
                    continue
            if not error.retryable:
                break
        assert last_error is not None
        raise last_error

    async def _try(self, candidate: Candidate, decision) -> GatewayError | None:
        """One attempt, with its bookkeeping: the attempt chain, runtime stats
        (latency EWMA, circuit breaker) and session affinity."""
        ctx = self.ctx
        started = time.perf_counter()
        attempt = {"provider": candidate.provider.name, "model": candidate.model}
        ctx.attempts.append(attempt)
        ctx.provider, ctx.model = candidate.provider.name, candidate.model
        ctx.model_info = candidate.provider.model_info(candidate.model)
        token = STATS.begin(candidate)
        ok = status = ttft = None  # ok stays None when cancelled (client gone): counts for nothing
        error = None
        try:
            async with asyncio.timeout(candidate.provider.total_timeout):
                await self._attempt(candidate)
            ok, status = True, ctx.status or 200
            if ctx.ttft is not None:
                ttft = ctx.ttft - (started - ctx.started)  # this attempt's own time to first byte
            if decision is not None and decision.affinity_key:
                STATS.stick(decision.affinity_key, candidate)
        except TimeoutError:
            error = GatewayError("timeout", f"upstream {candidate.provider.name} exceeded its total timeout "
                                            f"({candidate.provider.total_timeout:g}s)", 504, retryable=True)
        except GatewayError as exc:
            error = exc
        finally:
            if error is not None:
                ok, status = False, error.status
            STATS.end(token, ok, ttft, status)
            attempt["status"] = status if status is not None else 499
            if error is not None:
                attempt["error"] = error.type
            attempt["ms"] = round((time.perf_counter() - started) * 1000, 1)
        return error

    # ------------------------------------------------------------------ one attempt

    async def _attempt(self, candidate: Candidate) -> None:
        provider = candidate.provider
        adapter = get_adapter(provider.type)
        if adapter is None:
            raise GatewayError("api_error", f"provider type `{provider.type}` is not supported yet", 501,
                               retryable=True)
        if self.endpoint not in adapter.endpoints:
            raise GatewayError("invalid_request", f"provider `{provider.name}` ({provider.type}) does not offer "
                                                  f"{self.endpoint}", 400, retryable=True)
        self.adapter = adapter
        # Non-generation endpoints (embeddings, count_tokens) stay in the client's format:
        # the adapter maps them itself (prepare_body / adapt_response).
        upstream_format = adapter.wire_format_for(self.client_format, provider) \
            if self.endpoint == "generate" else self.client_format
        passthrough = upstream_format == self.client_format
        upstream_codec = get_codec(upstream_format)
        if passthrough:
            body = dict(self.body)  # shallow: the adapter only replaces top-level fields
        else:
            request = self.canonical
            hosted = [t.name for t in request.tools or () if t.extra.get("hosted")]
            if hosted:
                # Provider-hosted tools (web_search …) exist only on the client's own API.
                raise UnsupportedFeature(f"hosted tools ({', '.join(hosted)}) are not available on provider "
                                         f"`{provider.name}` ({provider.type}); route this request to a provider "
                                         f"that speaks {self.client_format} or remove them")
            translated = c.Request(**{f: getattr(request, f) for f in request.__slots__})
            translated.model = candidate.model
            translated.stream = self.stream
            body = upstream_codec.encode_request(translated)
        upstream = adapter.build(provider, candidate.model, body, self.endpoint, upstream_format, self.stream,
                                 orjson.dumps, self.client_headers if passthrough else None)
        response = await adapter.send(upstream, provider)
        if response.resends:  # went out on another connection: the pooled one was found closed
            self.ctx.attempts[-1]["resends"] = response.resends
        try:
            if response.status >= 400:
                raw = await response.read()
                error = adapter.decode_error(upstream_codec, response.status, raw, response.headers)
                if response.status in (401, 403):
                    # The provider refused the gateway's credentials: not the client's key.
                    error = GatewayError("bad_gateway", f"upstream {provider.name} rejected the gateway's "
                                                        f"provider credentials: {error.message}", 502,
                                         retryable=True, code="upstream_auth")
                elif error.retry_after is None and response.headers.get("retry-after"):
                    error.retry_after = _seconds(response.headers["retry-after"])
                raise error
            if self.stream:
                media = response.headers.get("content-type", "")
                if media.startswith(("application/json", "text/html", "text/plain")):
                    # A stream was asked for and a document came back: an error or garbage.
                    raw = await response.read()
                    raise GatewayError("bad_gateway", f"upstream {provider.name} answered a stream request "
                                                      f"with {media.split(';')[0]}: {raw[:120]!r}", 502,
                                       retryable=True)
                await self._relay_stream(response, passthrough, upstream_codec, provider.name)
            else:
                await self._relay_body(response, passthrough, upstream_codec, provider.name)
        finally:
            response.close()

    async def _relay_body(self, response: UpstreamResponse, passthrough: bool, upstream_codec,
                          name: str) -> None:
        ctx = self.ctx
        raw = await response.read()
        ctx.ttft = time.perf_counter() - ctx.started
        try:
            obj = orjson.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError
        except ValueError:
            raise GatewayError("bad_gateway", f"upstream {name} returned a body that is not JSON: "
                                              f"{raw[:120]!r}", 502, retryable=True) from None
        if self.endpoint != "generate":  # embeddings, count_tokens: the client's format
            adapted = self.adapter.adapt_response(self.endpoint, obj, self.body)
            ctx.usage = decode_usage(adapted.get("usage")) or c.Usage()
            out = raw if adapted is obj else orjson.dumps(adapted)
        elif passthrough:
            # OpenAI without usage stays None: the record is then estimated, and marked so.
            ctx.usage = decode_usage(obj.get("usage")) if self.client_format == "openai_chat" \
                else upstream_codec.usage_from_response(obj)
            out = raw
            if self.on_response is not None:
                await self.on_response(obj)
        else:
            try:
                decoded = upstream_codec.decode_response(obj)
            except GatewayError:
                raise
            except Exception as exc:
                raise GatewayError("bad_gateway", f"upstream {name} returned an unexpected body "
                                                  f"({type(exc).__name__})", 502, retryable=True) from None
            ctx.usage = decoded.usage
            encoded = self.client_codec.encode_response(decoded, self.canonical)
            out = orjson.dumps(encoded)
            if self.on_response is not None:
                await self.on_response(encoded)
        if ctx.usage is None:
            ctx.usage = self._estimate(raw)
        ctx.status = 200
        self.committed = True
        await send_bytes(self.send, 200, out, "application/json", ctx.response_headers())

    async def _relay_stream(self, response: UpstreamResponse, passthrough: bool, upstream_codec,
                            name: str) -> None:
        ctx = self.ctx
        chunks = response.chunks()
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            raise GatewayError("bad_gateway", f"upstream {name} closed the stream before sending anything", 502,
                               retryable=True) from None
        ctx.ttft = time.perf_counter() - ctx.started
        if passthrough and self.client_format == "openai_chat":
            pipeline = OpenAIChatTap(ctx, self.client_wants_usage())
        elif passthrough:
            pipeline = DecoderTap(ctx, upstream_codec, self._stream_request())
        else:
            pipeline = Translator(ctx, upstream_codec, self.client_codec, self.canonical)
        self.pipeline = pipeline
        capture = ResponsesCapture() if self.on_response is not None else None
        ctx.status = 200  # before the first feed: an error event in the first chunk must stay recorded
        out = pipeline.feed(first)
        headers = ctx.response_headers()
        headers["cache-control"] = "no-cache"
        send = self.send
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", self.client_codec.stream_media_type.encode())]
                    + encode_headers(headers)})
        self.committed = True

        async def emit(data: bytes) -> None:
            if capture is not None:
                capture.feed(data)
            await send({"type": "http.response.body", "body": data, "more_body": True})

        if out:
            await emit(out)
        async for chunk in chunks:
            out = pipeline.feed(chunk)
            if out:
                await emit(out)
        tail = pipeline.close()
        if capture is not None:
            capture.feed(tail)
            if capture.response is not None:
                await self.on_response(capture.response)
        if ctx.usage is None:
            ctx.usage = self._estimate(b"")
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    async def _send_stream_error(self, error: GatewayError) -> None:
        pipeline = getattr(self, "pipeline", None)
        body = pipeline.error(error) if pipeline is not None else b""
        if self.ctx.usage is None:
            self.ctx.usage = self._estimate(b"")
        await self.send({"type": "http.response.body", "body": body, "more_body": False})

    def _stream_request(self) -> c.Request:
        """What a same-format encoder needs to write an error event: no full decode."""
        return c.Request(model=str(self.body.get("model", "")), messages=[], stream=True)

    def _estimate(self, raw: bytes) -> c.Usage:
        """No usage from upstream: ~4 bytes a prompt token, ~1 token a stream event."""
        prompt = max(1, len(orjson.dumps(self.body.get("messages") or self.body.get("input") or "")) // 4)
        completion = self.ctx.chunks if self.stream else max(0, len(raw) // 4)
        return c.Usage(input_tokens=prompt, output_tokens=completion, estimated=True)


class ResponsesCapture:
    """Reads the client-bound Responses stream for its final `response` object
    (response.completed / response.incomplete), for the conversation store."""

    def __init__(self) -> None:
        from providers.codecs.sse import SSEParser

        self.parser = SSEParser()
        self.response: dict | None = None

    def feed(self, data: bytes) -> None:
        for event, payload in self.parser.feed(data):
            if event in ("response.completed", "response.incomplete"):
                try:
                    self.response = orjson.loads(payload).get("response")
                except (orjson.JSONDecodeError, AttributeError):
                    pass


def _backoff(rounds: int, error: GatewayError | None) -> float:
    """Wait before retrying an exhausted chain: the upstream's retry-after when it
    gave one (capped), else exponential backoff with full jitter."""
    cap = settings.GATEWAY_RETRY_MAX_WAIT
    if error is not None and error.retry_after is not None:
        return min(error.retry_after, cap)
    return random.uniform(0, min(cap, 0.5 * (2 ** rounds)))


def _seconds(value: str) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
