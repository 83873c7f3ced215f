"""A lean HTTP/1.1 client for the proxy hot path: keep-alive connection pools per
upstream origin (and proxy, and CA bundle), asyncio protocols, httptools' C parser.

Why not aiohttp's client: see providers/http.py (measured inside the gateway, issue 17).
It does what the gateway needs and no more: POST/GET with a prebuilt body,
Content-Length / chunked / read-until-close bodies, connect and read (first byte and
stall) timeouts, and a response body that can be streamed and abandoned (abandoning
closes the connection, which is what stops the provider generating). Besides:
- TLS is always verified (SNI, hostname): the system trust store, or the provider's CA
  bundle (a PEM file; unreadable = connect error).
- Proxies: the provider's `proxy` setting, else HTTPS_PROXY/HTTP_PROXY/NO_PROXY with
  urllib's semantics (`getproxies()`, `proxy_bypass()`), resolved at the first request
  to a URL, not again. Plain-http upstreams get an absolute-URI request through the
  proxy; https upstreams a CONNECT tunnel, then TLS to the upstream inside it. Proxy
  credentials come from the proxy URL's userinfo (Basic); a 407 is a connect error.
- Re-sends: only when the upstream cannot have received the request. Before a pooled
  connection is written to it is dropped when bytes arrived while it was idle (a
  server's parting `408`, which would be read as the next answer) or, idle for a second
  or more, when its socket is readable (a close the event loop has not processed yet);
  the request then goes out on another connection, and each such drop is counted
  (`Response.resends`, recorded on the attempt). Once any byte of a request was
  written it is never sent again: the upstream may have started (and billed) it; the
  gateway's fallback decides what happens next.
"""

from __future__ import annotations

import asyncio
import base64
import select
import ssl
import urllib.request
from collections import deque
from urllib.parse import unquote, urlsplit

import httptools


class UpstreamConnectError(Exception):
    """The connection could not be made (refused, DNS, TLS, proxy): nothing was sent."""


class UpstreamTimeout(Exception):
    """No connection, first byte or next byte within the timeout."""


class UpstreamConnectTimeout(UpstreamTimeout):
    """No connection within the connect timeout: nothing was sent (so nothing to bill)."""


class UpstreamProtocolError(Exception):
    """The connection broke or the upstream sent something that is not HTTP."""


_tls_contexts: dict[str, ssl.SSLContext] = {}


def tls_context(ca_bundle: str = "") -> ssl.SSLContext:
    """Verifying TLS context: the system trust store, or only the CAs of `ca_bundle`."""
    context = _tls_contexts.get(ca_bundle)
    if context is None:
        context = _tls_contexts[ca_bundle] = ssl.create_default_context(cafile=ca_bundle or None)
    return context


#: a connection idle for less than this is not polled before reuse: servers close idle
#: keep-alive connections after seconds (uvicorn 5 s, Node 5 s, nginx 75 s), not sooner
_POLL_AFTER_IDLE = 1.0


class _Stale(Exception):
    """A second response began on a connection whose response was complete."""


class _Connection(asyncio.Protocol):
    __slots__ = ("transport", "parser", "pool", "status", "headers", "chunks", "done", "error", "waiter",
                 "headers_done", "keep_alive", "closed", "busy", "stale", "idle_since", "_timer",
                 "_read_timeout", "_last_byte", "loop")

    def __init__(self, pool: "_Pool") -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.busy = False  # a request was written and its response is not finished with
        self.stale = False  # bytes arrived while idle: never to be reused
        self.idle_since = 0.0
        self.parser = None
        self._timer = None
        self._read_timeout = None
        self._last_byte = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: deque[bytes] = deque()
        self.done = False
        self.headers_done = False
        self.error: Exception | None = None
        self.waiter: asyncio.Future | None = None
        self.keep_alive = False

    # -- asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # e.g. "408 Request Timeout" on an idle keep-alive connection
            self.stale = True
            self.abort()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.stale:  # the extra bytes came after a complete response: it stays valid
                self.abort()
                return
            self._fail(UpstreamProtocolError(f"invalid HTTP from upstream: {exc}"))
            self.transport.close()
            return
        self._last_byte = self.loop.time()  # the read timer looks at it when it fires
        self._wake()

    def eof_received(self):
        return False

    def connection_lost(self, exc) -> None:
        self.closed = True
        self._disarm()
        if self.headers_done and not self.done and "content-length" not in self.headers \
                and "chunked" not in self.headers.get("transfer-encoding", ""):
            self.done = True  # a body delimited by the end of the connection ends here
        if not self.done:
            self._fail(UpstreamProtocolError("upstream closed the connection" + (f": {exc}" if exc else "")))
        self._wake()

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        if self.done:
            self.stale = True
            raise _Stale()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.done = True
        self._disarm()

    # -- internals
    def _fail(self, error: Exception) -> None:
        if self.error is None and not self.done:
            self.error = error

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _arm(self, delay: float) -> None:
        """The read timer: no byte for `read_timeout` is a timeout. Not re-armed per chunk
        (a timer handle per chunk is measurable on streams): when it fires it re-arms
        itself for what remains after the last byte."""
        self._timer = self.loop.call_later(delay, self._check_timeout)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_timeout(self) -> None:
        self._timer = None
        if self.done:
            return
        remaining = self._last_byte + self._read_timeout - self.loop.time()
        if remaining > 0:
            self._arm(remaining)
            return
        self._fail(UpstreamTimeout("no bytes from upstream within the read timeout"))
        self._wake()

    def dropped(self) -> bool:
        """Unusable for the next request: bytes arrived while idle, or (idle long enough
        that the server may have closed it) its socket is readable, i.e. EOF or garbage the
        loop has not processed yet: urllib3's is_connection_dropped, one poll."""
        if self.stale:
            return True
        if self.loop.time() - self.idle_since < _POLL_AFTER_IDLE:
            return False
        sock = self.transport.get_extra_info("socket")
        try:
            return sock is None or bool(select.select((sock.fileno(),), (), (), 0)[0])
        except (OSError, ValueError):
            return True

    async def wait(self) -> None:
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def start(self, payload: bytes, read_timeout: float | None) -> None:
        self._reset()
        self.busy = True
        if self.closed:  # a new connection the server closed at once (or greeted with bytes)
            self.error = UpstreamProtocolError("upstream closed the connection")
            return
        self.parser = httptools.HttpResponseParser(self)
        self._read_timeout = read_timeout
        self.transport.write(payload)
        if read_timeout is not None:
            self._last_byte = self.loop.time()
            self._arm(read_timeout)

    def finish(self) -> None:
        """The response is done with: back to the pool if reusable, else closed."""
        self._disarm()
        if self.done and self.keep_alive and self.error is None and not self.closed and not self.stale:
            self.busy = False
            self.idle_since = self.loop.time()
            self.pool.release(self)
        else:
            self.abort()

    def abort(self) -> None:
        self._disarm()
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Tunnel(asyncio.Protocol):
    """Reads a proxy's answer to CONNECT; the TLS layer then takes the transport over."""

    def __init__(self) -> None:
        self.buffer = b""
        self.head: asyncio.Future = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.head.done():
            return
        if b"\r\n\r\n" in self.buffer:
            self.head.set_result(self.buffer)
        elif len(self.buffer) > 65536:
            self.head.set_exception(UpstreamConnectError("the proxy's answer to CONNECT has no end"))

    def connection_lost(self, exc) -> None:
        if not self.head.done():
            self.head.set_exception(UpstreamConnectError("the proxy closed the connection during CONNECT"))


class _Proxy:
    __slots__ = ("host", "port", "tls", "authorization", "url")

    def __init__(self, url: str) -> None:
        if "://" not in url:  # HTTPS_PROXY=proxy.corp:3128, as curl and requests read it
            url = "http://" + url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # never the credentials
            raise ValueError(f"unsupported proxy {shown} (http:// or https:// expected)")
        self.url = url
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.authorization = ""
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self.authorization = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")


class _Pool:
    """Idle keep-alive connections to one origin, directly or through one proxy."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, proxy: _Proxy | None,
                 ca_bundle: str = "", max_idle: int = 256) -> None:
        self.host, self.port, self.tls, self.proxy, self.ca_bundle = host, port, tls, proxy, ca_bundle
        self.idle: deque[_Connection] = deque()
        self.max_idle = max_idle

    async def acquire(self, connect_timeout: float) -> tuple[_Connection, int]:
        """A connection and how many pooled ones were dropped before writing (re-sends)."""
        dropped = 0
        while self.idle:
            conn = self.idle.pop()  # the most recently used: warm, least likely closed
            if not conn.stale and (conn.closed or conn.transport.is_closing()):
                continue  # closed while idle, and the loop knew it: not a re-send
            if conn.dropped():  # would have been the one: counted
                dropped += 1
                conn.abort()
                continue
            return conn, dropped
        try:
            async with asyncio.timeout(connect_timeout):
                return await self._connect(), dropped
        except TimeoutError:
            via = f" (through proxy {self.proxy.host}:{self.proxy.port})" if self.proxy else ""
            raise UpstreamConnectTimeout(f"connect to {self.host}:{self.port} timed out{via}") from None
        except OSError as exc:  # refused, DNS, TLS (ssl errors are OSErrors)
            raise UpstreamConnectError(f"{type(exc).__name__}: {exc}") from None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        proxy = self.proxy
        if proxy is None:
            hostname = self.host if self.tls else None
            _, conn = await loop.create_connection(lambda: _Connection(self), self.host, self.port,
                                                   ssl=self.tls, server_hostname=hostname)
            return conn
        # an https proxy is verified with the provider's CA bundle if it has one (a company
        # proxy's CA is what such a bundle usually holds), else the system trust store
        proxy_tls = tls_context(self.ca_bundle) if proxy.tls else None
        proxy_name = proxy.host if proxy.tls else None
        if self.tls is None:  # plain http: absolute-URI requests to the proxy on this connection
            _, conn = await loop.create_connection(lambda: _Connection(self), proxy.host, proxy.port,
                                                   ssl=proxy_tls, server_hostname=proxy_name)
            return conn
        raw, tunnel = await loop.create_connection(_Tunnel, proxy.host, proxy.port, ssl=proxy_tls,
                                                   server_hostname=proxy_name)
        try:
            authority = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
            raw.write(f"CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n".encode("latin-1")
                      + (f"proxy-authorization: {proxy.authorization}\r\n".encode("latin-1")
                         if proxy.authorization else b"") + b"\r\n")
            head = await tunnel.head
            status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[1].startswith("2"):
                raise UpstreamConnectError(f"proxy {proxy.host}:{proxy.port} refused CONNECT {authority}: "
                                           f"{' '.join(parts[1:]) or status_line!r}")
            if not head.endswith(b"\r\n\r\n"):
                raise UpstreamConnectError(f"proxy {proxy.host}:{proxy.port} sent bytes after its CONNECT "
                                           "answer")
            conn = _Connection(self)
            conn.connection_made(await loop.start_tls(raw, conn, self.tls, server_hostname=self.host))
            return conn
        except BaseException:
            raw.close()
            raise

    def release(self, conn: _Connection) -> None:
        if len(self.idle) < self.max_idle:
            self.idle.append(conn)
        else:
            conn.abort()


class Response:
    """Status and headers (lower-case names) are there once `request()` returns; the
    body is read with `read()` or streamed with `chunks()`; `close()` must be called
    (it returns the connection to its pool, or closes it when the body was not read
    to the end)."""

    __slots__ = ("_conn", "status", "headers", "resends")

    def __init__(self, conn: _Connection, resends: int) -> None:
        self._conn = conn
        self.status = conn.status
        self.headers = conn.headers
        self.resends = resends

    async def chunks(self):
        """What arrived since the last one, joined: the taps and the client's socket see one
        piece per read, not one per HTTP chunk (aiohttp's readany() does the same)."""
        conn = self._conn
        pending = conn.chunks
        while True:
            if pending:
                if len(pending) == 1:
                    yield pending.popleft()
                else:
                    data = b"".join(pending)
                    pending.clear()
                    yield data
                continue
            if conn.done:
                return
            if conn.error is not None:
                raise conn.error
            await conn.wait()

    async def read(self) -> bytes:
        conn = self._conn
        while not conn.done:
            if conn.error is not None:
                raise conn.error
            await conn.wait()
        data = b"".join(conn.chunks)
        conn.chunks.clear()
        return data

    def close(self) -> None:
        self._conn.finish()


def _proxy_for(scheme: str, netloc: str, setting: str) -> str:
    """The proxy URL for an upstream ("" for none): the provider's setting, else the
    environment's (urllib's getproxies/proxy_bypass: HTTPS_PROXY for https, HTTP_PROXY
    for http, NO_PROXY host names, domains, IPs, `*`; lower-case names too)."""
    if setting == "direct":
        return ""
    if setting:
        return setting
    proxy = urllib.request.getproxies().get(scheme, "")
    if proxy and urllib.request.proxy_bypass(netloc):
        return ""
    return proxy


class Client:
    def __init__(self) -> None:
        self._pools: dict[tuple, _Pool] = {}
        self._targets: dict[tuple[str, str, str], tuple[_Pool, bytes, bytes]] = {}

    def _target(self, url: str, proxy: str, ca_bundle: str) -> tuple[_Pool, bytes, bytes]:
        """Pool, request-target and the fixed header lines for a URL (cached: the same few
        URLs repeat; the proxy environment is read at the first request to a URL only)."""
        key = (url, proxy, ca_bundle)
        hit = self._targets.get(key)
        if hit is not None:
            return hit
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        host = parts.hostname or ""
        authority = parts.netloc.rpartition("@")[2]
        proxy_url = _proxy_for(parts.scheme, authority, proxy)
        pool_key = (parts.scheme, host, port, proxy_url, ca_bundle)
        pool = self._pools.get(pool_key)
        if pool is None:
            pool = _Pool(host, port, tls_context(ca_bundle) if tls else None,
                         _Proxy(proxy_url) if proxy_url else None, ca_bundle)
            self._pools[pool_key] = pool
        lines = f"host: {authority}\r\n"
        if pool.proxy is not None and not tls:  # absolute-URI form to the proxy
            target = f"{parts.scheme}://{authority}{parts.path or '/'}" + (f"?{parts.query}" if parts.query
                                                                             else "")
            if pool.proxy.authorization:
                lines += f"proxy-authorization: {pool.proxy.authorization}\r\n"
        else:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if len(self._targets) > 10_000:
            self._targets.clear()
        hit = self._targets[key] = (pool, target.encode("latin-1"), lines.encode("latin-1"))
        return hit

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes, *,
                      connect_timeout: float, read_timeout: float, proxy: str = "",
                      ca_bundle: str = "") -> Response:
        """Send and return once the response headers arrived. `proxy`: "" for the
        environment's HTTPS_PROXY/HTTP_PROXY/NO_PROXY, a proxy URL, or "direct"."""
        try:
            pool, target, fixed = self._target(url, proxy, ca_bundle)
        except (OSError, ssl.SSLError, ValueError) as exc:  # unreadable CA bundle, malformed proxy URL
            raise UpstreamConnectError(f"{type(exc).__name__}: {exc}") from None
        head = [method.encode(), b" ", target, b" HTTP/1.1\r\n", fixed, b"content-length: ",
                str(len(body)).encode(), b"\r\n"]
        for name, value in headers.items():
            head += (name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n")
        head.append(b"\r\n")
        conn, resends = await pool.acquire(connect_timeout)
        # From here on the request may reach the upstream: whatever happens, it is not sent again.
        conn.start(b"".join(head) + body, read_timeout)
        try:
            while not conn.headers_done:
                if conn.error is not None:
                    raise conn.error
                await conn.wait()
        except BaseException:  # an error, or cancelled (the client went away): the connection is done
            conn.abort()
            raise
        if conn.status == 407 and pool.proxy is not None and pool.tls is None:
            conn.abort()  # the proxy, not the upstream, answered: nothing reached the upstream
            raise UpstreamConnectError(f"proxy {pool.proxy.host}:{pool.proxy.port} refused: 407 "
                                       f"{conn.headers.get('proxy-authenticate', '')}".rstrip())
        return Response(conn, resends)

    async def close(self) -> None:
        for pool in self._pools.values():
            while pool.idle:
                pool.idle.pop().abort()
        self._pools.clear()
        self._targets.clear()
