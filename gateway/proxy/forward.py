"""Send a resolved request to its candidates in order and relay the answer.

Fallback rule (design.md §1): the next candidate is tried only while nothing has
been sent to the client. For streams the gateway waits for the upstream's first
body chunk before sending the client its response headers, so a provider that
fails, stalls or drops before its first token still falls back. After that, a
failure ends the stream with the client format's error event.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import orjson
from django.conf import settings

from gateway.state import Gateway
from providers.adapters import get_adapter
from providers.adapters.base import Undelivered, UpstreamResponse
from providers.codecs import canonical as c
from providers.codecs import get_codec
from providers.codecs.errors import GatewayError, InvalidRequest
from providers.codecs.openai_chat import decode_usage
from providers.pricing import provider_price
from providers.output_limits import max_output_tokens
from routing.planner import larger_context_candidates
from routing.router import Candidate, Plan

from . import prompt_cache
from .context import RequestContext
from .hosted_tools import apply_body_options, apply_policy
from .io import encode_headers, send_bytes
from .response_cache import StreamCollector
from .response_ids import ResponseIdRewriter, new_response_id
from .streams import DecoderTap, OpenAIChatTap, Translator
from .tokens import count_text, estimate_request

# Another target may serve these, but retrying the same one soon will not help.
NOT_RETRIED_ON_SAME_TARGET = frozenset(("upstream_auth", "upstream_credits"))

log = logging.getLogger("junction.proxy")


class Exchange:
    """One client request: its body in the client's format, lazily decoded."""

    def __init__(self, ctx: RequestContext, client_format: str, endpoint: str, body: dict, send,
                 client_headers: list[tuple[bytes, bytes]] | None = None, *, stream: bool = False,
                 gw: Gateway, query: bytes = b"") -> None:
        self.gw = gw  # its runtime stats and upstream client
        self.ctx = ctx
        self.client_format = client_format
        self.client_codec = get_codec(client_format)
        self.endpoint = endpoint
        self.body = body
        self.send = send
        self.stream = stream
        self.client_headers = client_headers
        self.query = query  # the client's raw query string, for same-format passthrough
        self.committed = False
        self.complete = False  # the upstream's answer arrived whole, with its usage
        self._canonical: c.Request | None = None
        self._prompt_count: int | None = None  # the offline tokenizer's, once counted
        self.on_response = None  # async callable(response object): Responses API conversation store
        self.hosted_tools = "map"  # the route's hosted-tools policy (set by run from the decision)
        self.route_info = None  # the serving route's RouteInfo (caching switches); None: defaults
        self.cache_slot = None  # response_cache.Slot: store the answer once it is whole
        # Responses clients see a gateway-generated id, never the upstream's (response_ids.py).
        self.response_id = new_response_id() \
            if client_format == "openai_responses" and endpoint == "generate" else None

    @property
    def canonical(self) -> c.Request:
        if self._canonical is None:
            self._canonical = decode_client_request(self.client_codec, self.body)
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
        if decision is not None:
            self.hosted_tools = decision.hosted_tools
        index, widened, rounds = 0, False, 0
        deadline = self.ctx.started + settings.GATEWAY_RETRY_DEADLINE
        last_error: GatewayError | None = None
        spent: set[tuple[str, str]] = set()
        while True:
            if index >= len(candidates):
                wait = _backoff(rounds, last_error)
                # Candidates refused for credentials or credits are not tried again: waiting fixes neither.
                candidates = [c for c in candidates if (c.provider.name, c.model) not in spent]
                if (last_error is None or not last_error.retryable or not candidates
                        or rounds >= settings.GATEWAY_RETRIES
                        or time.perf_counter() + wait > deadline):
                    break
                rounds += 1
                await asyncio.sleep(wait)
                index = 0
                candidates = [c for c in candidates if self.gw.stats.available(c)] or candidates
            candidate = candidates[index]
            index += 1
            error = await self._try(candidate, decision, snapshot)
            if error is None:
                return
            last_error = error
            if error.code in NOT_RETRIED_ON_SAME_TARGET:
                spent.add((candidate.provider.name, candidate.model))
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

    async def _try(self, candidate: Candidate, decision, snapshot=None) -> GatewayError | None:
        """One attempt, with its bookkeeping: the attempt chain, runtime stats
        (latency EWMA, circuit breaker) and session affinity."""
        ctx = self.ctx
        if ctx.billable and self.endpoint == "generate":
            await self._bill_abandoned()  # the previous attempt reached its provider, then failed
        ctx.billable, ctx.usage, ctx.chunks = False, None, 0  # from here on: this attempt's
        started = time.perf_counter()
        attempt = {"provider": candidate.provider.name, "model": candidate.model}
        ctx.attempts.append(attempt)
        provider = candidate.provider
        ctx.provider, ctx.model = provider.name, candidate.model
        ctx.model_info = provider.model_info(candidate.model)
        price = ctx.price = provider_price(provider, candidate.model)
        # OpenRouter reports each request's cost itself: never unpriced in effect.
        key = ctx.key
        if not price.known and key is not None and key.require_prices and provider.type != "openrouter":
            if snapshot is not None and self.gw.limits.hard_budget_applies(snapshot, key):
                attempt["status"], attempt["error"] = 400, "model_unpriced"
                message = (f"Model `{candidate.model}` on provider `{provider.name}` has no known price "
                           "and a hard budget applies to this key; ask an admin to set its price or choose "
                           "another model.")
                return GatewayError("invalid_request", message, 400, retryable=True, code="model_unpriced")
        stats = self.gw.stats
        token = stats.begin(candidate)
        ok = status = ttft = None  # ok stays None when cancelled (client gone): counts for nothing
        error = None
        try:
            async with asyncio.timeout(candidate.provider.total_timeout):
                await self._attempt(candidate)
            ok, status = True, ctx.status or 200
            if ctx.ttft is not None:
                ttft = ctx.ttft - (started - ctx.started)  # this attempt's own time to first byte
            if decision is not None and decision.affinity_key:
                stats.stick(decision.affinity_key, candidate)
        except TimeoutError:
            error = GatewayError("timeout", f"upstream {candidate.provider.name} exceeded its total timeout "
                                            f"({candidate.provider.total_timeout:g}s)", 504, retryable=True)
        except GatewayError as exc:
            error = exc
        finally:
            if error is not None:
                ok, status = False, error.status
            stats.end(token, ok, ttft, status)
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
            raise GatewayError("invalid_request", f"provider `{provider.name}` ({provider.type}) does not "
                                                  f"offer {self.endpoint}", 400, retryable=True)
        self.adapter = adapter
        # Non-generation endpoints (embeddings, count_tokens) stay in the client's format:
        # the adapter maps them itself (prepare_body / adapt_response).
        upstream_format = adapter.wire_format_for(self.client_format, provider) \
            if self.endpoint == "generate" else self.client_format
        passthrough = upstream_format == self.client_format
        upstream_codec = get_codec(upstream_format)
        if self.ctx.dropped_tools:
            self.ctx.dropped_tools = []  # an earlier candidate's: this one may run them
        if passthrough:
            body = dict(self.body)  # shallow: the adapter only replaces top-level fields
        else:
            request = self.canonical
            translated = c.Request(**{f: getattr(request, f) for f in request.__slots__})
            translated.model = candidate.model
            translated.stream = self.stream
            mapped: list[str] = []
            if request.tools:
                # Provider-hosted tools (web_search …): mapped, dropped or refused by route policy.
                translated.tools, translated.tool_choice, mapped, self.ctx.dropped_tools = apply_policy(
                    request, self.hosted_tools, upstream_format, provider.type, provider.name)
            limit = max_output_tokens(candidate.model, self.ctx.model_info)
            if limit and translated.max_tokens and translated.max_tokens > limit:
                # The target would refuse more than it can write (Claude Code's 32000 to gpt-4o).
                self.ctx.attempts[-1]["max_tokens_clamped"] = [translated.max_tokens, limit]
                translated.max_tokens = limit
            body = upstream_codec.encode_request(translated)
            if mapped:
                apply_body_options(body, mapped, provider.type)
        if self.endpoint == "generate":
            self._prompt_cache(body, upstream_format, candidate.model, passthrough, provider.type)
        upstream = adapter.build(provider, candidate.model, body, self.endpoint, upstream_format, self.stream,
                                 orjson.dumps, self.client_headers if passthrough else None)
        if passthrough and self.query:
            adapter.add_query(upstream, self.query)
        ctx = self.ctx
        ctx.billable = True  # from here the provider may bill the prompt, whatever happens next
        try:
            response = await adapter.send(self.gw.upstream, upstream, provider)
        except GatewayError as exc:
            # Never reached it (refused, connect timeout) or broke before any answer: nothing was
            # generated. A first-byte timeout (a stall) may have been, and stays billable.
            if exc.type == "bad_gateway" or isinstance(exc, Undelivered):
                ctx.billable = False
            raise
        if response.resends:  # went out on another connection: the pooled one was found closed
            ctx.attempts[-1]["resends"] = response.resends
        try:
            if response.status >= 400:
                ctx.billable = False  # refused: nothing generated, nothing billed
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

    def _prompt_cache(self, body: dict, upstream_format: str, model: str, passthrough: bool,
                      provider_type: str) -> None:
        """Cache breakpoints on the stable prefix (prompt_cache.py); OpenAI's prompt_cache_key
        kept where a translation would lose it. A 1-hour TTL is priced at its write rate."""
        route, ctx = self.route_info, self.ctx
        if prompt_cache.applies(upstream_format, model, passthrough, route):
            ttl = route.prompt_cache_ttl if route is not None else "5m"
            session = ctx.session_id or self._session_fallback()
            added = prompt_cache.place(body, upstream_format, model, ttl, session, self.gw.prompt_prefixes,
                                       passthrough)
            if added:
                ctx.attempts[-1]["cache_breakpoints"] = added
                if ttl == "1h":
                    ctx.price = prompt_cache.one_hour_price(ctx.price)
        elif provider_type == "openai" and not passthrough and upstream_format.startswith("openai_"):
            prompt_cache.prompt_cache_key(body, self.body, ctx.session_id)

    def _session_fallback(self) -> str:
        """No session id from the client: the key, the route and the first message stand in
        (an agent's conversation keeps its first message)."""
        messages = self.body.get("messages") or self.body.get("input")
        first = messages[0] if isinstance(messages, list) and messages else messages
        key = self.ctx.key
        return f"{key.id if key else ''}\x00{self.ctx.route}\x00{hash(orjson.dumps(first))}"

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
            if self.response_id is not None:
                if isinstance(obj.get("id"), str):
                    out = raw.replace(orjson.dumps(obj["id"]), orjson.dumps(self.response_id))
                obj["id"] = self.response_id
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
            if self.response_id is not None:
                encoded["id"] = self.response_id
            out = orjson.dumps(encoded)
            if self.on_response is not None:
                await self.on_response(encoded)
        if ctx.usage is None:
            ctx.usage = await self._estimate(raw)
        self.complete = True
        ctx.status = 200
        self.committed = True
        await send_bytes(self.send, 200, out, "application/json", ctx.response_headers())
        if self.cache_slot is not None and self.endpoint == "generate":
            self.cache_slot.store(out, ctx)

    async def _relay_stream(self, response: UpstreamResponse, passthrough: bool, upstream_codec,
                            name: str) -> None:
        ctx = self.ctx
        chunks = response.chunks()
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            raise GatewayError("bad_gateway", f"upstream {name} closed the stream before sending anything",
                               502, retryable=True) from None
        ctx.ttft = time.perf_counter() - ctx.started
        if passthrough and self.client_format == "openai_chat":
            pipeline = OpenAIChatTap(ctx, self.client_wants_usage())
        elif passthrough:
            pipeline = DecoderTap(ctx, upstream_codec, self._stream_request())
        else:
            pipeline = Translator(ctx, upstream_codec, self.client_codec, self.canonical)
        self.pipeline = pipeline
        capture = ResponsesCapture() if self.on_response is not None else None
        collector = StreamCollector(self.client_codec) if self.cache_slot is not None else None
        ids = self.id_rewriter = ResponseIdRewriter(self.response_id) if self.response_id else None
        ctx.status = 200  # before the first feed: an error event in the first chunk must stay recorded
        out = pipeline.feed(first)
        if ids is not None:
            out = ids.feed(out)
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
            if collector is not None:
                collector.feed(data)
            await send({"type": "http.response.body", "body": data, "more_body": True})

        if out:
            await emit(out)
        async for chunk in chunks:
            out = pipeline.feed(chunk)
            if ids is not None and out:
                out = ids.feed(out)
            if out:
                await emit(out)
        tail = pipeline.close()
        self.complete = pipeline.done and ctx.usage is not None
        if ids is not None:
            tail = ids.close(tail)
        if capture is not None:
            capture.feed(tail)
            if capture.response is not None:
                await self.on_response(capture.response)
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        if collector is not None and self.complete:
            collector.feed(tail)
            response = collector.response(ctx.usage)
            if response is not None:
                body = orjson.dumps(self.client_codec.encode_response(response, self.canonical))
                self.cache_slot.store(body, ctx)

    async def _send_stream_error(self, error: GatewayError) -> None:
        pipeline = getattr(self, "pipeline", None)
        body = pipeline.error(error) if pipeline is not None else b""
        ids = getattr(self, "id_rewriter", None)
        if ids is not None:
            body = ids.close(body)
        await self.send({"type": "http.response.body", "body": body, "more_body": False})

    def _stream_request(self) -> c.Request:
        """What a same-format encoder needs to write an error event: no full decode."""
        return c.Request(model=str(self.body.get("model", "")), messages=[], stream=True)

    async def _estimate(self, raw: bytes) -> c.Usage:
        """A whole body without usage: the prompt by the offline tokenizer, ~4 bytes an
        output token."""
        return c.Usage(input_tokens=await self._prompt_tokens(), output_tokens=max(0, len(raw) // 4),
                       estimated=True)

    async def settle_usage(self) -> None:
        """Once, when the request ends (serve's finally). An attempt that reached a
        provider (not refused by it) but ended without the provider's final usage report
        (client gone, upstream dropped, stalled or timed out) is billed on estimates: the
        prompt as the provider reported it (Anthropic message_start) else by the offline
        tokenizer, the output as what was relayed (~one token a content event, or more
        if the provider's partial report says so). The record is marked estimated."""
        ctx = self.ctx
        if self.complete or not ctx.billable or self.endpoint != "generate":
            return
        ctx.usage = await self._estimated_usage()

    async def _estimated_usage(self) -> c.Usage:
        """The current attempt's usage when it ended without the provider's final report."""
        ctx = self.ctx
        usage = ctx.usage or c.Usage()
        return c.Usage(
            input_tokens=usage.input_tokens or await self._prompt_tokens(),
            output_tokens=max(usage.output_tokens, ctx.chunks), cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens, reasoning_tokens=usage.reasoning_tokens,
            cost=usage.cost, estimated=True)

    async def _bill_abandoned(self) -> None:
        """An attempt that reached its provider and then stalled, timed out or broke off, after
        which another candidate is tried: the provider billed its prompt (and any output), so
        its estimate, priced at its own model's price, is folded into the request's one record
        (RequestContext.fold) and listed on its entry of the attempt chain."""
        ctx = self.ctx
        ctx.usage = await self._estimated_usage()
        cost, source = ctx.cost()
        ctx.fold(ctx.usage, cost, source)

    async def _prompt_tokens(self) -> int:
        """The offline tokenizer's count; big prompts (~180 ms for 136K tokens) are counted
        in a worker thread so the event loop keeps serving. The same for every attempt."""
        if self._prompt_count is None:
            self._prompt_count = await self._count_prompt_tokens()
        return self._prompt_count

    async def _count_prompt_tokens(self) -> int:
        size = len(orjson.dumps(self.body.get("messages") or self.body.get("input") or ""))
        if size < 32_768:
            return self._count_prompt()
        try:
            return await asyncio.to_thread(self._count_prompt)
        except asyncio.CancelledError:  # shutting down: still write the record, roughly
            return max(1, size // 4)

    def _count_prompt(self) -> int:
        try:
            return max(1, estimate_request(self.canonical))
        except Exception:  # a body the codec cannot decode still cost its bytes
            return max(1, count_text(orjson.dumps(self.body.get("messages") or self.body.get("input")
                                                  or "").decode()))


def decode_client_request(codec, body: dict, **options) -> c.Request:
    """The client codec's decode_request, with a net: a body of the right JSON shape
    at the top but the wrong types deeper down (tests/fuzz) is the client's 400, not
    a 500, even where a codec misses a type check."""
    try:
        return codec.decode_request(body, **options)
    except GatewayError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        log.warning("%s decoder: %s on a malformed body", codec.name, type(exc).__name__)
        raise InvalidRequest(f"The request body is malformed: a field has the wrong type or shape "
                             f"({type(exc).__name__}: {str(exc)[:200]}).") from None


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
