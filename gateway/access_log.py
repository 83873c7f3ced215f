"""Access log: one line per finished request, fed by the gateway's event publisher
(gw.events, once per usage row) rather than Daphne's access log, so it carries what
the gateway knows: request id, key prefix, user, route, provider, model, status,
latency, tokens and cost. Never the key itself (only its display prefix).

GATEWAY_LOG_FORMAT (`serve --log-format`): `json` (one JSON object a line), `text`,
or `none` (the default: nothing, no cost). Lines go to stderr through the
`junction.access` logger, so a deployment can route them elsewhere in LOGGING.

`text` is the console of `make run`: one line for every HTTP request (the admin's too,
static files only when they fail), written by ConsoleLog around the ASGI app: time,
method, path (never a key or a query string), status, latency, and for a proxied request
the route, provider and model the gateway answered with in its x-gateway-* headers (no
extra work on the hot path).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from datetime import datetime

import orjson

from .log_redaction import redact

log = logging.getLogger("junction.access")


def _handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


class AccessLog:
    """A gw.events listener. Key prefix and user name come from the config snapshot the
    request was served with (an index by key id, rebuilt when the snapshot changes)."""

    def __init__(self, snapshots, fmt: str) -> None:
        self.snapshots = snapshots
        self.fmt = fmt
        self._indexed = None
        self._keys: dict[int, tuple[str, str]] = {}
        self._users: dict[int, str] = {}

    def _who(self, key_id, user_id) -> tuple[str, str]:
        snapshot = self.snapshots.current
        if snapshot is not self._indexed:
            self._indexed = snapshot
            keys = getattr(snapshot, "keys", None) or {}
            self._keys = {k.id: (k.prefix, k.username) for k in keys.values()}
            self._users = {k.user_id: k.username for k in keys.values()}
            anonymous = getattr(snapshot, "anonymous", None)
            if anonymous is not None:
                self._users[anonymous.user_id] = anonymous.username
        if key_id is not None and key_id in self._keys:
            return self._keys[key_id]
        return ("anonymous" if key_id is None and user_id is not None else ""), self._users.get(user_id, "")

    def entry(self, fields: dict) -> dict:
        prefix, user = self._who(fields.get("key_id"), fields.get("user_id"))
        return {
            "time": fields["created_at"].isoformat(timespec="milliseconds"),
            "request_id": fields["request_id"], "key_prefix": prefix, "user": user,
            "endpoint": fields.get("endpoint", ""), "route": fields.get("route", ""),
            "provider": fields.get("provider", ""), "model": fields.get("model", ""),
            "stream": fields.get("stream", False), "status": fields.get("status", 0),
            "error_type": fields.get("error_type", ""), "latency_ms": fields.get("latency_ms"),
            "ttft_ms": fields.get("ttft_ms"), "attempts": fields.get("attempts", 0),
            "prompt_tokens": fields.get("prompt_tokens", 0),
            "completion_tokens": fields.get("completion_tokens", 0),
            "cached_tokens": fields.get("cached_tokens", 0), "cost_usd": float(fields.get("cost_usd") or 0),
        }

    def __call__(self, fields: dict) -> None:
        e = self.entry(fields)
        if self.fmt == "json":
            log.info(orjson.dumps(e).decode())
        else:
            log.info("%s %s %s key=%s user=%s route=%s %s/%s %s ms tokens=%s/%s cost=$%.6f",
                     e["time"], e["request_id"], e["status"], e["key_prefix"] or "-", e["user"] or "-",
                     e["route"] or "-", e["provider"] or "-", e["model"] or "-", e["latency_ms"],
                     e["prompt_tokens"], e["completion_tokens"], e["cost_usd"])


def console_path(path: str) -> str:
    """The request path as the console shows it: a key in the path (/k/<key>/…) cut to its
    display prefix, as in every log line (gateway.log_redaction)."""
    return redact(path) if path.startswith("/k/") else path


STATIC = "/static/"
_HEADERS = {b"x-gateway-route": "route", b"x-gateway-provider": "provider", b"x-gateway-model": "model"}


class ConsoleLog:
    """One text line per HTTP request, written when the response has ended:
    `19:20:01.123 POST /v1/messages 200 412 ms route=default provider=local-fast model=qwen3`."""

    async def __call__(self, app, scope, receive, send) -> None:
        started = time.perf_counter()
        seen = {"status": 0}

        async def sending(message):
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for name, value in message.get("headers") or ():
                    field = _HEADERS.get(name.lower() if isinstance(name, bytes) else name.lower().encode())
                    if field:
                        seen[field] = value.decode("latin-1") if isinstance(value, bytes) else value
            await send(message)

        try:
            await app(scope, receive, sending)
        finally:
            # The admin's CSS, scripts and icons (a dozen per page) only when they fail.
            if seen["status"] >= 400 or not scope.get("path", "").startswith(STATIC):
                self.write(scope, seen, (time.perf_counter() - started) * 1000)

    @staticmethod
    def line(scope: dict, seen: dict, latency_ms: float) -> str:
        status = seen["status"] or 499  # no response started: the client went away (or a crash)
        parts = [datetime.now().strftime("%H:%M:%S.%f")[:-3], scope.get("method", "-"),
                 console_path(scope.get("path", "")), str(status), f"{latency_ms:.0f} ms"]
        parts += [f"{field}={seen[field]}" for field in ("route", "provider", "model") if seen.get(field)]
        return " ".join(parts)

    def write(self, scope: dict, seen: dict, latency_ms: float) -> None:
        log.info(self.line(scope, seen, latency_ms))


def _ready_logger() -> None:
    if not log.handlers:
        log.addHandler(_handler())
        log.propagate = False
    log.setLevel(logging.INFO)


def install(gw, fmt: str) -> Callable[[], None] | None:
    """Start the access log of format `fmt`: `json` subscribes to gw.events, `text` sets
    gw.console (gateway.asgi wraps every HTTP request in it). Returns the uninstall."""
    if fmt == "json":
        _ready_logger()
        return gw.events.subscribe(AccessLog(gw.snapshots, fmt))
    if fmt == "text":
        _ready_logger()
        gw.console = ConsoleLog()

        def uninstall() -> None:
            gw.console = None

        return uninstall
    return None
