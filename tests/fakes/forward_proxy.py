"""A small HTTP forward proxy on loopback, as company networks run them (squid & co):
`CONNECT host:port` opens a tunnel (HTTPS upstreams), an absolute-URI request
(`POST http://host:port/path HTTP/1.1`) is forwarded (plain-HTTP upstreams).
Optionally requires `Proxy-Authorization: Basic …`. Records what it was asked.

    proxy = ForwardProxy(); proxy.start()   # in a thread, like the fakes
    ... proxy.url, proxy.seen  ->  [("CONNECT", "localhost:443"), ("POST", "http://…"), …]
"""

from __future__ import annotations

import asyncio
import base64
import threading
from urllib.parse import urlsplit


class ForwardProxy:
    def __init__(self, credentials: tuple[str, str] | None = None, ssl_context=None,
                 host: str = "127.0.0.1") -> None:
        self.credentials = credentials
        self.ssl_context = ssl_context  # set: an https:// proxy (TLS between client and proxy)
        self.host = host  # the name in `url` (a TLS proxy's certificate names it)
        self.seen: list[tuple[str, str]] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        if self.credentials:
            return f"{scheme}://{self.credentials[0]}:{self.credentials[1]}@{self.host}:{self.port}"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> "ForwardProxy":
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._shutdown)

    def _shutdown(self) -> None:
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.call_soon(self._loop.stop)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", self.port,
                                                                         ssl=self.ssl_context))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _one(self, reader, writer) -> bool:
        """One request from the client; False when the connection is done."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = [line.split(":", 1) for line in lines[1:] if ":" in line]
        fields = {name.strip().lower(): value.strip() for name, value in headers}
        self.seen.append((method, target))
        if self.credentials:
            expected = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
            if fields.get("proxy-authorization") != expected:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                             b"proxy-authenticate: Basic realm=\"test\"\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                return True
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            return False
        # absolute-URI form: forward the request with an origin-form target, relay the answer
        parts = urlsplit(target)
        body = await reader.readexactly(int(fields.get("content-length", "0")))
        up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        out = [f"{method} {path} HTTP/1.1"]
        out += [f"{name.strip()}: {value.strip()}" for name, value in headers
                if name.strip().lower() not in ("proxy-authorization", "proxy-connection", "connection")]
        out.append("connection: close")
        up_writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)
        await up_writer.drain()
        response = await up_reader.readuntil(b"\r\n\r\n")
        length = [line.split(b":", 1)[1] for line in response.split(b"\r\n")
                  if line.lower().startswith(b"content-length:")]
        writer.write(response)
        if length:
            writer.write(await up_reader.readexactly(int(length[0])))
        else:  # chunked or delimited by the close: relay until the upstream closes
            await _pipe(up_reader, writer)
        up_writer.close()
        await writer.drain()
        return False  # one request per client connection keeps this proxy simple


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
