"""The hot path: a plain ASGI application for /v1/*, /api/* (Ollama) and /health/*,
routed in gateway/asgi.py ahead of Django (Django's request machinery would halve
throughput, design.md §2). Everything else goes to Django.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from django.conf import settings

from gateway.snapshot import get_snapshot
from gateway.usage import recorder
from providers.codecs import get_codec
from providers.codecs.errors import GatewayError, InvalidRequest
from routing.router import ResolutionError, resolve

from .auth import authenticate
from .context import SESSION_HEADERS, RequestContext
from .forward import Exchange
from .io import BodyTooLarge, ClientGone, read_body, send_bytes, send_json

log = logging.getLogger("junction.proxy")


class FrontDoor:
    """A client-facing endpoint: its wire format and how to sanity-check a body
    before anything is forwarded (full decoding happens only when translating)."""

    format = "openai_chat"
    endpoint = "chat"

    def validate(self, body: dict) -> None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("`model` is required and must be a non-empty string.", code="invalid_model")
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise InvalidRequest("`stream` must be a boolean.")


class OpenAIChatDoor(FrontDoor):
    format, endpoint = "openai_chat", "chat"

    def validate(self, body: dict) -> None:
        super().validate(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("`messages` is required and must be a non-empty array.", code="invalid_messages")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise InvalidRequest(f"`messages[{i}]` must be an object with a string `role`.",
                                     code="invalid_messages")


class OpenAIEmbeddingsDoor(FrontDoor):
    format, endpoint = "openai_chat", "embeddings"

    def validate(self, body: dict) -> None:
        super().validate(body)
        if "input" not in body:
            raise InvalidRequest("`input` is required.")


async def serve(door: FrontDoor, scope: dict, receive, send, path_key: str | None) -> None:
    ctx = RequestContext(door.endpoint)
    codec = get_codec(door.format)
    exchange: Exchange | None = None
    watcher: asyncio.Task | None = None
    try:
        for name, value in scope["headers"]:
            if name in SESSION_HEADERS:
                ctx.session_id = value.decode("latin-1")
        snapshot = await get_snapshot()
        ctx.key = authenticate(scope, snapshot, path_key)
        length = _content_length(scope)
        raw = await read_body(receive, settings.GATEWAY_MAX_BODY_BYTES, length)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
        door.validate(body)
        ctx.requested_model = body["model"]
        ctx.stream = bool(body.get("stream"))
        try:
            plan = resolve(snapshot, body["model"], ctx.key)
        except ResolutionError as exc:
            raise GatewayError(exc.type, exc.message, exc.status,
                               code="model_not_found" if exc.status == 404 else None) from None
        ctx.route = plan.route
        watcher = asyncio.ensure_future(_watch_disconnect(receive, ctx, asyncio.current_task()))
        exchange = Exchange(ctx, door.format, door.endpoint, body, send)
        await exchange.run(plan)
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
            ctx.fail(499, "cancelled", "request cancelled (server shutting down)")
            raise
        # The client went away: the upstream response was closed by the cancellation.
        asyncio.current_task().uncancel()
        ctx.disconnected = True
        ctx.fail(499, "client_disconnected", "client closed the connection")
    except Exception as exc:  # never a traceback to the client
        log.exception("unhandled error in %s", door.endpoint)
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
            recorder.record(ctx.to_record())


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


async def models(scope, receive, send, path_key) -> None:
    snapshot = await get_snapshot()
    codec = get_codec("openai_chat")
    try:
        key = authenticate(scope, snapshot, path_key)
    except GatewayError as exc:
        status, payload = codec.encode_error(exc)
        await send_json(send, status, payload)
        return
    allowed = key.allowed_routes
    data, seen = [], set()
    for name in snapshot.routes:
        if allowed is None or name in allowed:
            data.append({"id": name, "object": "model", "created": 0, "owned_by": "junction"})
            seen.add(name)
    if allowed is None:
        for provider in snapshot.providers.values():
            for model_id in provider.models:
                ident = f"{provider.name}/{model_id}"
                if ident not in seen:
                    seen.add(ident)
                    data.append({"id": ident, "object": "model", "created": 0, "owned_by": provider.name})
    await send_json(send, 200, {"object": "list", "data": data})


async def health_live(scope, receive, send, path_key) -> None:
    await send_json(send, 200, {"status": "ok"})


async def health_ready(scope, receive, send, path_key) -> None:
    try:
        snapshot = await get_snapshot()
    except Exception as exc:  # database unreachable
        await send_json(send, 503, {"status": "unavailable", "error": type(exc).__name__})
        return
    await send_json(send, 200, {"status": "ok", "providers": len(snapshot.providers), "routes": len(snapshot.routes)})


DOORS = {
    "/v1/chat/completions": OpenAIChatDoor(),
    "/chat/completions": OpenAIChatDoor(),  # clients configured without the /v1 prefix
    "/v1/embeddings": OpenAIEmbeddingsDoor(),
}
GETS = {"/v1/models": models, "/models": models, "/health/live": health_live, "/health/ready": health_ready}
PREFIXES = ("/v1/", "/health/", "/chat/", "/models", "/k/", "/api/chat", "/api/tags", "/api/version")


def handles(path: str) -> bool:
    return path.startswith(PREFIXES)


async def app(scope, receive, send) -> None:
    path = scope["path"]
    path_key = None
    if path.startswith("/k/"):
        # Key in the path for clients that cannot send headers (OLLAMA_HOST=http://host:3000/k/<key>).
        _, _, rest = path[3:].partition("/")
        path_key = path[3:].split("/", 1)[0]
        path = "/" + rest
    method = scope["method"]
    door = DOORS.get(path)
    if door is not None:
        if method == "POST":
            await serve(door, scope, receive, send, path_key)
        else:
            await _method_not_allowed(send)
        return
    handler = GETS.get(path)
    if handler is not None and method in ("GET", "HEAD"):
        await handler(scope, receive, send, path_key)
        return
    status, payload = get_codec("openai_chat").encode_error(
        GatewayError("not_found", f"No such endpoint: {method} {path}", 404))
    await send_json(send, status, payload)


async def _method_not_allowed(send) -> None:
    await send_bytes(send, 405, orjson.dumps({"error": {"message": "Method not allowed", "type":
                                                        "invalid_request_error", "code": None}}))
