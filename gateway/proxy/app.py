"""The hot path: a plain ASGI application for /v1/*, /api/* (Ollama) and /health/*,
routed in gateway/asgi.py ahead of Django (Django's request machinery costs too much
throughput, design.md §2 and README, Performance). Everything else goes to Django.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from django.conf import settings

from gateway.metrics import exposition
from gateway.state import Gateway
from providers.adapters import get_adapter
from providers.codecs import get_codec
from providers.codecs.errors import GatewayError, InvalidRequest
from routing.features import extract_features, session_id
from routing.planner import plan_request
from routing.router import ResolutionError

from . import conversations
from .auth import authenticate
from .context import RequestContext
from .doors import (AnthropicCountTokensDoor, AnthropicMessagesDoor, FrontDoor, OllamaChatDoor,
                    OpenAIChatDoor, OpenAIEmbeddingsDoor, ResponsesDoor)
from .forward import Exchange
from .io import BodyTooLarge, ClientGone, read_body, send_bytes, send_json
from .tokens import estimate_request

log = logging.getLogger("junction.proxy")


async def serve(gw: Gateway, door: FrontDoor, scope: dict, receive, send, path_key: str | None) -> None:
    ctx = RequestContext(door.name)
    codec = get_codec(door.format)
    exchange: Exchange | None = None
    snapshot = None
    admitted = False
    watcher: asyncio.Task | None = None
    try:
        headers = dict(scope["headers"])  # ASGI names are lower-case already
        ctx.session_id = session_id(headers)
        snapshot = await gw.snapshots.get()
        ctx.key = authenticate(scope, snapshot, path_key)
        raw = await read_body(receive, settings.GATEWAY_MAX_BODY_BYTES, _content_length(scope))
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
        door.validate(body)
        ctx.requested_model = body["model"]
        ctx.stream = door.is_stream(body)
        features = extract_features(door.format, body, headers, raw=raw)
        try:
            decision = plan_request(snapshot, body["model"], ctx.key, features, gw.stats, explain=False)
        except ResolutionError as exc:
            raise GatewayError(exc.type, exc.message, exc.status,
                               code="model_not_found" if exc.status == 404 else None) from None
        plan = decision.plan
        ctx.route, ctx.rule = plan.route, decision.rule or ""
        budget_warning = gw.limits.admit(snapshot, ctx.key)
        admitted = True
        ctx.candidates = [f"{c.provider.name}/{c.model}" for c in plan.candidates]
        watcher = asyncio.ensure_future(_watch_disconnect(receive, ctx, asyncio.current_task()))
        if door.endpoint == "count_tokens" and not _counts_upstream(plan, door.format):
            await _count_locally(ctx, codec, body, send)
            return
        store = door.format == "openai_responses" and body.get("store", True) is not False
        if door.format == "openai_responses":
            body = await conversations.expand(body)
        exchange = Exchange(ctx, door.format, door.endpoint, body, send, scope["headers"], stream=ctx.stream,
                            gw=gw)
        if budget_warning:
            ctx.warning = budget_warning
        if store:
            exchange.on_response = lambda response, items=conversations.as_items(body.get("input")): \
                conversations.save(response, items)
        await exchange.run(plan, decision, snapshot)
    except GatewayError as exc:
        ctx.fail(exc.status, exc.type, exc.message)
        if exchange is None or not exchange.committed:
            status, payload = codec.encode_error(exc)
            headers = ctx.response_headers() if ctx.route else {"x-request-id": ctx.request_id}
            if exc.retry_after:
                headers["retry-after"] = str(int(exc.retry_after))
            await send_json(send, status, payload, headers)
    except BodyTooLarge:
        error = GatewayError("request_too_large", f"The request body exceeds the gateway's limit of "
                                                  f"{settings.GATEWAY_MAX_BODY_BYTES} bytes.", 413)
        ctx.fail(413, error.type, error.message)
        status, payload = codec.encode_error(error)
        await send_json(send, status, payload, {"x-request-id": ctx.request_id})
    except (ClientGone, asyncio.CancelledError) as exc:
        if isinstance(exc, asyncio.CancelledError) and not ctx.disconnected:
            if gw.expired:  # drain deadline (gateway.daphne_main): end in the client's format
                asyncio.current_task().uncancel()
                await _shutting_down(ctx, codec, exchange, send)
                return
            ctx.fail(499, "cancelled", "request cancelled (server shutting down)")
            raise
        # The client went away: the upstream response was closed by the cancellation.
        asyncio.current_task().uncancel()
        ctx.disconnected = True
        ctx.fail(499, "client_disconnected", "client closed the connection")
    except Exception as exc:  # never a traceback to the client
        log.exception("unhandled error in %s", door.name)
        error = GatewayError("api_error", f"Internal gateway error ({type(exc).__name__}).", 500)
        ctx.fail(500, error.type, error.message)
        if exchange is None or not exchange.committed:
            status, payload = codec.encode_error(error)
            await send_json(send, status, payload, {"x-request-id": ctx.request_id})
    finally:
        if watcher is not None:
            watcher.cancel()
        if not ctx.recorded:
            ctx.recorded = True
            record = ctx.to_record()
            if admitted:  # booked before it is queued: see gateway.limits
                gw.limits.settle(snapshot, ctx.key, float(record["cost_usd"]),
                              record["prompt_tokens"] + record["completion_tokens"])
            gw.recorder.record(record)


async def _shutting_down(ctx: RequestContext, codec, exchange: Exchange | None, send) -> None:
    """The drain's grace period is over: a stream gets the client format's error event,
    a request that has not answered yet a 503; the usage row is written as for any request."""
    error = GatewayError("overloaded", "The gateway is shutting down; retry the request.", 503,
                         retryable=True)
    if exchange is not None and exchange.committed:
        await exchange._send_stream_error(error)
        return
    ctx.fail(error.status, error.type, error.message)
    status, payload = codec.encode_error(error)
    await send_json(send, status, payload, {"x-request-id": ctx.request_id})


def _counts_upstream(plan, client_format: str) -> bool:
    """count_tokens goes upstream only where the first candidate can count in the
    client's own format (Anthropic); elsewhere the gateway estimates offline."""
    candidate = plan.candidates[0]
    adapter = get_adapter(candidate.provider.type)
    return adapter is not None and "count_tokens" in adapter.endpoints and \
        adapter.wire_format_for(client_format, candidate.provider) == client_format


async def _count_locally(ctx: RequestContext, codec, body: dict, send) -> None:
    request = codec.decode_request(body, require_max_tokens=False)
    tokens = estimate_request(request)
    ctx.status = 200
    ctx.provider, ctx.model = "junction", "o200k-estimate"
    await send_json(send, 200, {"input_tokens": tokens}, ctx.response_headers())


async def _watch_disconnect(receive, ctx: RequestContext, task: asyncio.Task) -> None:
    """Cancel the request as soon as the client goes away, so the upstream request
    is closed at once (no orphaned generation billing on)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            ctx.disconnected = True
            task.cancel()
            return


def _content_length(scope: dict) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _wants_anthropic(scope: dict) -> bool:
    return any(name == b"anthropic-version" for name, _ in scope["headers"])


async def _listing(gw: Gateway, scope, path_key, error_format: str):
    snapshot = await gw.snapshots.get()
    try:
        key = authenticate(scope, snapshot, path_key)
    except GatewayError as exc:
        return None, get_codec(error_format).encode_error(exc)
    allowed = key.allowed_routes
    names = [(name, "junction") for name in snapshot.routes if allowed is None or name in allowed]
    if allowed is None:
        seen = {n for n, _ in names}
        for provider in snapshot.providers.values():
            defaults = [provider.default_model] if provider.default_model else []
            for model_id in list(provider.models) or defaults:
                ident = f"{provider.name}/{model_id}"
                if ident not in seen:
                    seen.add(ident)
                    names.append((ident, provider.name))
    return names, None


async def models(gw: Gateway, scope, receive, send, path_key) -> None:
    anthropic = _wants_anthropic(scope)
    names, error = await _listing(gw, scope, path_key, "anthropic_messages" if anthropic else "openai_chat")
    if error:
        await send_json(send, *error)
    elif anthropic:
        data = [{"type": "model", "id": n, "display_name": n, "created_at": "2025-01-01T00:00:00Z"}
                for n, _ in names]
        await send_json(send, 200, {"data": data, "has_more": False,
                                    "first_id": data[0]["id"] if data else None,
                                    "last_id": data[-1]["id"] if data else None})
    else:
        await send_json(send, 200, {"object": "list", "data": [
            {"id": n, "object": "model", "created": 0, "owned_by": owner} for n, owner in names]})


async def ollama_tags(gw: Gateway, scope, receive, send, path_key) -> None:
    names, error = await _listing(gw, scope, path_key, "ollama")
    if error:
        await send_json(send, *error)
        return
    await send_json(send, 200, {"models": [
        {"name": n, "model": n, "modified_at": "2025-01-01T00:00:00Z", "size": 0, "digest": "",
         "details": {"format": "", "family": owner, "families": None, "parameter_size": "",
                     "quantization_level": ""}}
        for n, owner in names]})


async def ollama_version(gw: Gateway, scope, receive, send, path_key) -> None:
    await send_json(send, 200, {"version": "0.12.0"})


async def stored_response(gw: Gateway, scope, receive, send, path_key, ident: str) -> None:
    snapshot = await gw.snapshots.get()
    codec = get_codec("openai_responses")
    try:
        authenticate(scope, snapshot, path_key)
        stored = await conversations.load(ident)
        if stored is None:
            raise GatewayError("not_found", f"Response with id '{ident}' not found.", 404)
    except GatewayError as exc:
        await send_json(send, *codec.encode_error(exc))
        return
    await send_json(send, 200, stored["response"])


async def metrics(gw: Gateway, scope, receive, send, path_key) -> None:
    token = settings.GATEWAY_METRICS_TOKEN
    if token and not any(name == b"authorization" and value.decode("latin-1") == f"Bearer {token}"
                         for name, value in scope["headers"]):
        await send_json(send, 401, {"error": "metrics token required"})
        return
    body, content_type = exposition()
    await send_bytes(send, 200, body, content_type)


async def health_live(gw: Gateway, scope, receive, send, path_key) -> None:
    await send_json(send, 200, {"status": "ok"})


async def health_ready(gw: Gateway, scope, receive, send, path_key) -> None:
    started = time.perf_counter()
    try:
        snapshot = await gw.snapshots.get()
    except Exception as exc:  # database unreachable
        await send_json(send, 503, {"status": "unavailable", "error": type(exc).__name__})
        return
    degraded = {name: status for name, status in snapshot.health.items() if status in ("down", "degraded")}
    circuits = {name: v["circuit"] for name, v in gw.stats.summary().items() if v["circuit"] != "closed"}
    await send_json(send, 200, {"status": "degraded" if degraded or circuits else "ok",
                                "providers": len(snapshot.providers), "routes": len(snapshot.routes),
                                "degraded_providers": degraded, "open_circuits": circuits,
                                "snapshot_ms": round((time.perf_counter() - started) * 1000, 3)})


DOORS: dict[str, FrontDoor] = {
    "/v1/chat/completions": OpenAIChatDoor(),
    "/chat/completions": OpenAIChatDoor(),  # clients configured without the /v1 prefix
    "/v1/embeddings": OpenAIEmbeddingsDoor(),
    "/v1/messages": AnthropicMessagesDoor(),
    "/v1/messages/count_tokens": AnthropicCountTokensDoor(),
    "/v1/responses": ResponsesDoor(),
    "/responses": ResponsesDoor(),
    "/api/chat": OllamaChatDoor(),
}
GETS = {"/v1/models": models, "/models": models, "/api/tags": ollama_tags, "/api/version": ollama_version,
        "/health/live": health_live, "/health/ready": health_ready, "/metrics": metrics}
PREFIXES = ("/v1/", "/health/", "/metrics", "/chat/", "/models", "/responses", "/k/", "/api/chat",
            "/api/tags", "/api/version")


def handles(path: str) -> bool:
    return path.startswith(PREFIXES)


async def app(gw: Gateway, scope, receive, send) -> None:
    path = scope["path"]
    path_key = None
    if path.startswith("/k/"):
        # Key in the path for clients that cannot send headers (OLLAMA_HOST=http://host:3000/k/<key>).
        path_key, _, rest = path[3:].partition("/")
        path = "/" + rest
    method = scope["method"]
    door = DOORS.get(path)
    if door is not None:
        if method == "POST":
            await serve(gw, door, scope, receive, send, path_key)
        else:
            await _error(send, door.format, GatewayError("invalid_request", f"Use POST for {path}.", 405))
        return
    handler = GETS.get(path)
    if handler is not None and method in ("GET", "HEAD"):
        await handler(gw, scope, receive, send, path_key)
    elif path.startswith("/v1/responses/") and method == "GET":
        await stored_response(gw, scope, receive, send, path_key, path[len("/v1/responses/"):])
    else:
        fmt = "anthropic_messages" if _wants_anthropic(scope) else "openai_chat"
        await _error(send, fmt, GatewayError("not_found", f"No such endpoint: {method} {path}", 404))


async def _error(send, fmt: str, error: GatewayError) -> None:
    status, payload = get_codec(fmt).encode_error(error)
    await send_json(send, error.status if error.status == 405 else status, payload)
