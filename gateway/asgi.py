"""ASGI entry point. The proxy hot path is a plain ASGI app routed ahead of Django;
admin, management API and reports are ordinary Django views.

`gateway` is this process's one Gateway (gateway.state). Servers that speak the ASGI
lifespan protocol (uvicorn, hypercorn) start and stop it through `application`;
Daphne does not, so gateway.daphne_main drives it from Twisted's start-up and
shutdown events.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

# Sets Django up before the proxy imports models. The static-files handler serves the
# admin's CSS/JS from the installed apps (no collectstatic or web server needed for
# the embedded profile; put a CDN or web server in front in the scaled one).
django_app = ASGIStaticFilesHandler(get_asgi_application())

from gateway import server_tuning  # noqa: E402,F401  (cheaper request parsing in Daphne/Twisted)

from gateway.proxy import app as proxy  # noqa: E402
from gateway.proxy.io import send_json  # noqa: E402
from gateway.state import Gateway  # noqa: E402

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

NOT_STARTED = ("The gateway is not started: serve it with `python -m gateway.daphne_main` or an ASGI "
               "server that runs the lifespan protocol.")


def build_application(gw: Gateway, websockets: bool = True):
    """The ASGI application serving `gw`: lifespan, HTTP and (the live view) websockets."""
    websocket_app = live_websockets(gw) if websockets else None

    async def http_app(scope, receive, send):
        console = gw.console  # the text access log (gateway.access_log): None unless enabled
        if console is None:
            await serve_http(scope, receive, send)
        else:
            await console(serve_http, scope, receive, send)

    async def serve_http(scope, receive, send):
        path = scope["path"]
        if proxy.handles(path):
            if not gw.running:
                await send_json(send, 503, {"error": {"type": "api_error", "message": NOT_STARTED}})
                return
            await proxy.app(gw, scope, receive, send)
        elif path == "/" and scope["method"] == "HEAD":
            # Claude Code probes `HEAD /` before its first call: answer at once, no body.
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
        else:
            # Django views that need the gateway (admin pages) find it in request.scope["state"],
            # where ASGI lifespan state goes.
            scope["state"] = {**scope.get("state", {}), "gateway": gw}
            await django_app(scope, receive, send)

    async def lifespan(scope, receive, send):
        while True:
            message = await receive()
            kind = message["type"].rpartition(".")[2]  # startup | shutdown
            try:
                await (gw.start() if kind == "startup" else gw.stop())
            except Exception as exc:
                await send({"type": f"lifespan.{kind}.failed", "message": f"{type(exc).__name__}: {exc}"})
                raise
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return

    async def application(scope, receive, send):
        if scope["type"] == "http":
            await http_app(scope, receive, send)
        elif scope["type"] == "lifespan":
            await lifespan(scope, receive, send)
        elif scope["type"] == "websocket" and websocket_app is not None:
            await websocket_app(scope, receive, send)
        else:
            raise ValueError(f"unsupported ASGI scope type {scope['type']!r}")

    return application


def live_websockets(gw: Gateway):
    """/ws/live (staff): `gw`'s usage events as they happen."""
    return AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter([
        path("ws/live", gw.live.consumer()),
    ])))


gateway = Gateway()
application = build_application(gateway)


