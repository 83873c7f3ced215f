"""ASGI entry point (Daphne). The proxy hot path is a plain ASGI app routed ahead
of Django; admin, management API and reports are ordinary Django views."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

# Sets Django up before the proxy imports models. The static-files handler serves the
# admin's CSS/JS from the installed apps (no collectstatic or web server needed for
# the embedded profile; put a CDN or web server in front in the scaled one).
django_app = ASGIStaticFilesHandler(get_asgi_application())

from channels.routing import ProtocolTypeRouter  # noqa: E402

from gateway import server_tuning  # noqa: E402,F401  (cheaper request parsing in Daphne/Twisted)

from gateway.proxy import app as proxy  # noqa: E402


async def http_app(scope, receive, send):
    path = scope["path"]
    if proxy.handles(path):
        await proxy.app(scope, receive, send)
    elif path == "/" and scope["method"] == "HEAD":
        # Claude Code probes `HEAD /` before its first call: answer at once, no body.
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
    else:
        await django_app(scope, receive, send)


from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from gateway.live import LiveConsumer  # noqa: E402

websocket_app = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter([
    path("ws/live", LiveConsumer.as_asgi()),  # /live/ (staff): usage events as they happen
])))

application = ProtocolTypeRouter({"http": http_app, "websocket": websocket_app})
