"""The floor under the gateway in tests/bench.py (`--clients floor-daphne,floor-uvloop`):
pass-through servers that forward each request to the fake upstream with the gateway's
own upstream client (providers/upstream_client.py) and relay the answer, doing none of
the gateway's work (no key, routing, limits, translation, usage). Gateway minus floor
is what the gateway itself adds; the floor itself is the server stack and the machine.

- `python -m tests.bench_clients.passthrough daphne <daphne args>`: Daphne on uvloop with
  the gateway's server tuning (gateway.server_tuning, the GC settings of
  gateway.daphne_main): the stack the design card fixes.
- `python -m tests.bench_clients.passthrough uvloop <port>`: no framework at all, an
  asyncio protocol with httptools on uvloop: what any Python proxy on this machine costs.

The upstream is BENCH_UPSTREAM; model "fake" and "fake/<model>" become the upstream's.
"""

from __future__ import annotations

import asyncio
import os
import sys

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "") + "/v1/chat/completions"
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-x"}
_client = None


def upstream_body(body: bytes) -> bytes:
    return body.replace(b'"model": "fake/', b'"model": "').replace(b'"model": "fake"', b'"model": "mock"')


async def forward(body: bytes):
    global _client
    if _client is None:
        from providers.upstream_client import Client

        _client = Client()
    return await _client.request("POST", UPSTREAM, HEADERS, upstream_body(body), connect_timeout=5,
                                 read_timeout=30)


async def application(scope, receive, send) -> None:
    """The ASGI app Daphne serves."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "GET":  # /health/live
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    response = await forward(body)
    kind = response.headers.get("content-type", "application/json").encode()
    await send({"type": "http.response.start", "status": response.status,
                "headers": [(b"content-type", kind)]})
    async for chunk in response.chunks():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    response.close()  # the connection back to the pool
    await send({"type": "http.response.body", "body": b""})


class _Protocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive with httptools; answers in chunked encoding as it relays."""

    def connection_made(self, transport) -> None:
        import httptools

        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body, self.body = b"".join(self.body), []
        if self.parser.get_method() == b"GET":
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            return
        asyncio.get_running_loop().create_task(self.relay(body))

    async def relay(self, body: bytes) -> None:
        response = await forward(body)
        kind = response.headers.get("content-type", "application/json").encode()
        self.transport.write(b"HTTP/1.1 %d OK\r\ncontent-type: %s\r\ntransfer-encoding: chunked\r\n\r\n"
                             % (response.status, kind))
        async for chunk in response.chunks():
            self.transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        response.close()
        self.transport.write(b"0\r\n\r\n")


def main() -> None:
    import uvloop

    kind, args = sys.argv[1], sys.argv[2:]
    if kind == "uvloop":
        async def serve() -> None:
            server = await asyncio.get_running_loop().create_server(_Protocol, "127.0.0.1", int(args[0]))
            await server.serve_forever()

        uvloop.run(serve())
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    import gateway.server_tuning  # noqa: F401  (Twisted's hot-path fixes, as under the gateway)
    from daphne.cli import CommandLineInterface
    from twisted.internet import reactor

    from gateway.daphne_main import _tune_gc

    reactor.callWhenRunning(_tune_gc)
    CommandLineInterface().run(args)


if __name__ == "__main__":
    main()
