"""The hot path: a plain ASGI application for /v1/*, /api/* (Ollama) and /health/*,
routed in gateway/asgi.py ahead of Django (Django's request machinery costs too much
throughput, design.md §2 and README, Performance). Everything else goes to Django.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import time

import orjson
from django.conf import settings

from gateway.metrics import exposition
from gateway.state import Gateway
from providers.adapters import get_adapter
from providers.codecs import get_codec
from providers.codecs.errors import GatewayError, InvalidRequest
from providers.pricing import provider_price
from routing.features import extract_features, session_id
from routing.planner import plan_request
from routing.router import ResolutionError

from . import conversations, response_cache
from .auth import authenticate
from .context import RequestContext
from .doors import (AnthropicCountTokensDoor, AnthropicMessagesDoor, FrontDoor, OllamaChatDoor,
                    OpenAIChatDoor, OpenAIEmbeddingsDoor, ResponsesDoor)
from .forward import Exchange, decode_client_request
from .io import BodyTooLarge, ClientGone, read_body, send_bytes, send_json
from .tokens import estimate_request

log = logging.getLogger("junction.proxy")


async def serve(gw: Gateway, door: FrontDoor, scope: dict, receive, send, path_key: str | None) -> None:
    ctx = RequestContext(door.name)
    codec = get_codec(door.format)
    exchange: Exchange | None = None
    snapshot = None
    admission = None
    watcher: asyncio.Task | None = None
    try:
        headers = dict(scope["headers"])  # ASGI names are lower-case already
        ctx.session_id = session_id(headers)
        _check_content_type(headers.get(b"content-type"))
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
        admission = await gw.limits.admit_request(snapshot, ctx.key, lambda: _max_cost(codec, body, plan))
        ctx.limit_headers = admission.headers
        ctx.candidates = [f"{c.provider.name}/{c.model}" for c in plan.candidates]
        watcher = asyncio.ensure_future(_watch_disconnect(receive, ctx, asyncio.current_task()))
        if door.endpoint == "count_tokens" and not _counts_upstream(plan, door.format):
            await _count_locally(ctx, codec, body, send)
            return
        store = door.format == "openai_responses" and body.get("store", True) is not False
        if door.format == "openai_responses":
            body = await conversations.expand(body, ctx.key)
        exchange = Exchange(ctx, door.format, door.endpoint, body, send, scope["headers"], stream=ctx.stream,
                            gw=gw, query=scope.get("query_string", b""))
        exchange.route_info = snapshot.routes.get(plan.route)
        if admission.warning:
            ctx.warning = admission.warning
        if store:
            exchange.on_response = lambda response, items=conversations.as_items(body.get("input")): \
                conversations.save(response, items, ctx.key)
        slot = await gw.responses.begin(ctx, exchange.route_info, door.format, door.endpoint, body, headers)
        if slot is not None and slot.entry is not None:
            await response_cache.replay(exchange, slot.entry)
            return
        exchange.cache_slot = slot
        try:
            await exchange.run(plan, decision, snapshot)
        finally:
            if slot is not None:
                slot.finish()
    except GatewayError as exc:
        ctx.fail(exc.status, exc.type, exc.message)
        if exchange is None or not exchange.committed:
            status, payload = codec.encode_error(exc)
            if exc.code == "unsupported_media_type":
                status = 415  # the codecs know no 415 of their own
            headers = ctx.response_headers() if ctx.route else {"x-request-id": ctx.request_id}
            if exc.retry_after:
                headers["retry-after"] = str(int(exc.retry_after))
            headers.update(getattr(exc, "headers", None) or ())  # x-ratelimit-* on a 429
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
        pipeline = getattr(exchange, "pipeline", None)
        if pipeline is None or not pipeline.done or pipeline.errored:
            ctx.fail(499, "client_disconnected", "client closed the connection")
        # else: the client hung up after the stream's final event (Codex does on response.completed)
        # while the upstream had not closed yet: it got the whole answer, a success.
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
            if exchange is not None:
                try:
                    await exchange.settle_usage()  # interrupted after forwarding: bill estimates
                except Exception:  # never lose the record over an estimate
                    log.exception("usage estimate failed")
            record = ctx.to_record()
            if admission is not None:  # booked before it is queued: see gateway.limits
                gw.limits.settle(snapshot, ctx.key, float(record["cost_usd"]),
                                 record["prompt_tokens"] + record["completion_tokens"], admission=admission)
            gw.recorder.record(record)


def _max_cost(codec, body: dict, plan) -> float:
    """What the request can cost at most, reserved against its budgets at admission: the
    estimated prompt at the dearest candidate's input price plus its max output tokens (or
    GATEWAY_RESERVE_DEFAULT_OUTPUT_TOKENS) at the dearest output price. Only computed when
    a budget applies."""
    prices = [provider_price(c.provider, c.model) for c in plan.candidates]
    input_price = max((p.input for p in prices), default=0.0)
    output_price = max((p.output for p in prices), default=0.0)
    if not input_price and not output_price:
        return 0.0
    try:
        request = codec.decode_request(body)
        prompt, max_output = (estimate_request(request) if input_price else 0), request.max_tokens
    except Exception:  # embeddings and other bodies without a canonical request
        prompt, max_output = len(orjson.dumps(body)) // 3, None
    max_output = max_output or settings.GATEWAY_RESERVE_DEFAULT_OUTPUT_TOKENS
    return (prompt * input_price + max_output * output_price) / 1_000_000


def _check_content_type(value: bytes | None) -> None:
    """JSON only (a missing content-type is taken as JSON, as the providers do)."""
    if value is None:
        return
    media = value.split(b";", 1)[0].strip().lower()
    if media == b"application/json" or media.endswith(b"+json") or media == b"":
        return
    message = (f"Unsupported content-type '{value.decode('latin-1')[:100]}': "
               f"send the body as JSON with `content-type: application/json`.")
    raise GatewayError("invalid_request", message, 415, code="unsupported_media_type")


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
    request = decode_client_request(codec, body, require_max_tokens=False)
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
        key = authenticate(scope, snapshot, path_key)
        stored = await conversations.load(ident, key)
        if stored is None:
            raise GatewayError("not_found", f"Response with id '{ident}' not found.", 404)
    except GatewayError as exc:
        await send_json(send, *codec.encode_error(exc))
        return
    await send_json(send, 200, stored["response"])


async def metrics(gw: Gateway, scope, receive, send, path_key) -> None:
    token = settings.GATEWAY_METRICS_TOKEN
    if token:
        presented = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        if not hmac.compare_digest(presented, b"Bearer " + token.encode()):
            await send_json(send, 401, {"error": "metrics token required"})
            return
    elif not settings.GATEWAY_METRICS_PUBLIC and not _local(scope):
        await send_json(send, 401, {"error": "metrics are served to loopback only: set GATEWAY_METRICS_TOKEN "
                                             "(or GATEWAY_METRICS_PUBLIC=true)"})
        return
    body, content_type = exposition()
    await send_bytes(send, 200, body, content_type)


def _local(scope: dict) -> bool:
    """Reached over loopback, and not through a proxy (which may be on loopback itself)."""
    server, client = scope.get("server") or ("", 0), scope.get("client") or ("", 0)
    if not (_loopback(server[0]) and _loopback(client[0])):
        return False
    return not any(name in (b"x-forwarded-for", b"forwarded", b"x-real-ip") for name, _ in scope["headers"])


def _loopback(host) -> bool:
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


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
    problems = dict(snapshot.provider_problems)
    stale = gw.snapshots.rebuild_error
    body = {"status": "degraded" if degraded or circuits or problems or stale else "ok",
            "providers": len(snapshot.providers), "routes": len(snapshot.routes),
            "degraded_providers": degraded, "open_circuits": circuits,
            "snapshot_ms": round((time.perf_counter() - started) * 1000, 3)}
    if problems:
        body["provider_errors"] = problems
    if stale:  # serving the last snapshot: its rebuild failed (database unreachable?)
        body["snapshot_error"] = stale
    await send_json(send, 200, body)


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


def split_path_key(path: str) -> tuple[str | None, str]:
    """`/k/<key>/v1/...` → (key, `/v1/...`): the key in the path, for clients that cannot
    send headers (OLLAMA_HOST=http://host:3000/k/<key>); other paths → (None, path)."""
    if not path.startswith("/k/"):
        return None, path
    path_key, _, rest = path[3:].partition("/")
    return path_key, "/" + rest


def error_format_for(path: str) -> str:
    """The error format of the door a path names (for answers given before the ASGI
    app runs: gateway/server_tuning.py)."""
    path = split_path_key(path)[1]
    door = DOORS.get(path)
    if door is not None:
        return door.format
    if path.startswith("/api/"):
        return "ollama"
    return "anthropic_messages" if path.startswith("/v1/messages") else "openai_chat"


def refuse_early(gw: Gateway, path: str, headers: list[tuple[bytes, bytes]],
                 error: GatewayError) -> tuple[dict, dict]:
    """An error answered at the connection, before the body is read (server_tuning.py):
    the payload in the door's format and, for a door, a UsageRecord (the key checked
    against the in-memory snapshot only) and its x-request-id."""
    path_key, path = split_path_key(path)
    door = DOORS.get(path)
    _, payload = get_codec(error_format_for(path)).encode_error(error)
    if door is None:
        return payload, {}
    ctx = RequestContext(door.name)
    try:
        ctx.key = authenticate({"headers": headers}, gw.snapshots.current, path_key)
    except GatewayError:
        pass
    ctx.fail(error.status, error.type, error.message)
    ctx.recorded = True
    gw.recorder.record(ctx.to_record())
    return payload, {"x-request-id": ctx.request_id}


def handles(path: str) -> bool:
    return path.startswith(PREFIXES)


async def app(gw: Gateway, scope, receive, send) -> None:
    path_key, path = split_path_key(scope["path"])
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
