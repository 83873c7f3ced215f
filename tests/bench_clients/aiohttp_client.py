"""aiohttp's client configured for the proxy hot path: the B of the issue-17 A/B, not on
the hot path (providers/upstream_client.py is; the decision and the figures are in
providers/http.py and the README). Same interface as providers.upstream_client.Client;
`python -m tests.bench_clients.aiohttp_gateway <daphne args>` runs a gateway with it
(tests/bench.py --clients builtin,aiohttp). It passes tests/test_upstream_client.py
(JUNCTION_TEST_UPSTREAM_CLIENT=aiohttp) but three: an https:// proxy is verified with the
system store only, a proxy URL needs a scheme. Configuration that matters for CPU per request:
- one ClientSession and one TCPConnector per process and event loop (pooled keep-alive
  connections per origin, proxy and TLS context);
- ClientTimeout objects are frozen and cached per (connect, read) pair, URL objects per
  URL string, proxy decisions per origin: no per-request construction of any of them;
- proxies from HTTPS_PROXY/HTTP_PROXY/NO_PROXY are resolved once per URL with aiohttp's
  own helper, or taken from the provider's `proxy` setting: aiohttp's `trust_env=True`
  re-reads the environment on every request, measured ~0.24 ms of CPU each time;
- TLS verification is always on: the system trust store, or a provider's CA bundle.

Re-sends: aiohttp never re-sends a POST. Before a pooled connection is written to, it
is checked for bytes that arrived while it was idle (a server's parting 408, which
aiohttp would read as the answer to the next request) and, idle for a second or more,
for a close the event loop has not processed yet (a readable idle socket is EOF or
garbage); such a connection is dropped and the request goes out on another one.
That is the only case where a request is "re-sent" (it never reached the upstream) and
each one is counted (`Response.resends`, recorded on the attempt). A connection that
breaks after the request was written is never re-sent: the upstream may have started
(and billed) it; the gateway's fallback decides what happens next.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import select
import ssl
from time import monotonic

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

# The gateway's exception classes, so the adapters map this client's errors alike.
from providers.upstream_client import UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout


#: the re-send counter of the request being sent by the current task (see _Connector)
_resends: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("upstream_resends", default=None)

_tls_contexts: dict[str, ssl.SSLContext] = {}


def tls_context(ca_bundle: str = "") -> ssl.SSLContext:
    """Verifying TLS context: the system trust store, or only the CAs of `ca_bundle`
    (a PEM file). One per bundle: the connector pools connections per context."""
    context = _tls_contexts.get(ca_bundle)
    if context is None:
        context = ssl.create_default_context(cafile=ca_bundle or None)
        _tls_contexts[ca_bundle] = context
    return context


def _dropped(protocol) -> bool:
    """An idle keep-alive connection with something to read is closed (EOF) or broken:
    urllib3's is_connection_dropped check, one poll of the socket."""
    transport = protocol.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return True
    try:
        return bool(select.select((sock.fileno(),), (), (), 0)[0])
    except (OSError, ValueError):
        return True


#: a connection idle for less than this is not polled before reuse: servers close idle
#: keep-alive connections after seconds (uvicorn 5 s, Node 5 s, nginx 75 s), not sooner
_POLL_AFTER_IDLE = 1.0


class _Connector(aiohttp.TCPConnector):
    async def _get(self, key, traces):
        while True:
            idle = self._conns.get(key)
            # aiohttp reuses the longest-idle connection first (popleft): that is the one to check
            idle_for = monotonic() - idle[0][1] if idle else 0.0
            conn = await super()._get(key, traces)
            if conn is None:
                return conn
            # should_close: bytes arrived while idle (a server's parting "408 Request Timeout"),
            # which aiohttp would otherwise read as the answer to the next request
            if not conn.protocol.should_close and (idle_for < _POLL_AFTER_IDLE
                                                   or not _dropped(conn.protocol)):
                return conn
            counter = _resends.get()
            if counter is not None:
                counter[0] += 1
            conn.close()


class Response:
    """Status and headers (case-insensitive) are there once `request()` returns; the
    body is read with `read()` or streamed with `chunks()`; `close()` must be called
    (it returns the connection to its pool, or closes it when the body was not read
    to the end: that is what stops a provider generating)."""

    __slots__ = ("_response", "status", "headers", "resends")

    def __init__(self, response: aiohttp.ClientResponse, resends: int) -> None:
        self._response = response
        self.status = response.status
        self.headers = response.headers
        self.resends = resends

    async def chunks(self):
        content = self._response.content
        while True:
            try:
                chunk = await content.readany()
            except Exception as exc:
                raise _translate(exc) from None
            if not chunk:
                return
            yield chunk

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except Exception as exc:
            raise _translate(exc) from None

    def close(self) -> None:
        self._response.release()


def _translate(exc: BaseException) -> Exception:
    if isinstance(exc, (UpstreamConnectError, UpstreamTimeout, UpstreamProtocolError)):
        return exc
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamTimeout(str(exc) or "no bytes from upstream within the timeout")
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS, proxy CONNECT refused
        return UpstreamConnectError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return UpstreamConnectError(f"proxy refused: {exc.status} {exc.message}")
    if isinstance(exc, (aiohttp.ClientError, OSError)):
        return UpstreamProtocolError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    raise exc


class Client:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[tuple[str, str, str], tuple[URL, URL | None, object, ssl.SSLContext | None]] = {}
        self._timeouts: dict[tuple[float, float], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = _Connector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=False)
        # auto_decompress stays on: the gateway asks for `identity`, so it never engages;
        # an upstream that compresses anyway is still readable.
        self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                              trust_env=False, timeout=aiohttp.ClientTimeout())
        # The server exits without an await-able shutdown hook: close the pool then, so aiohttp
        # does not report an "unclosed session" on every stop.
        atexit.register(connector._close)
        return self._session

    def _target(self, url: str, proxy: str, ca_bundle: str):
        """URL object, proxy and TLS context for a URL (cached: the same few URLs repeat;
        the proxy environment is read at the first request to a URL, not again)."""
        key = (url, proxy, ca_bundle)
        hit = self._urls.get(key)
        if hit is not None:
            return hit
        target = URL(url, encoded=True)  # sent byte for byte (SigV4-signed paths)
        proxy_url, proxy_auth = None, None
        if proxy == "direct":
            pass
        elif proxy:
            proxy_url = URL(proxy)
        else:
            try:
                proxy_url, proxy_auth = get_env_proxy_for_url(target)
            except LookupError:
                pass
        context = tls_context(ca_bundle) if target.scheme == "https" else None
        if len(self._urls) > 10_000:
            self._urls.clear()
        hit = self._urls[key] = (target, proxy_url, proxy_auth, context)
        return hit

    def _timeout(self, connect: float, read: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get((connect, read))
        if timeout is None:
            timeout = self._timeouts[(connect, read)] = aiohttp.ClientTimeout(sock_connect=connect,
                                                                             sock_read=read)
        return timeout

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes, *,
                      connect_timeout: float, read_timeout: float, proxy: str = "",
                      ca_bundle: str = "") -> Response:
        """Send and return once the response headers arrived. `proxy`: "" for the
        environment's HTTPS_PROXY/HTTP_PROXY/NO_PROXY, a proxy URL, or "direct"."""
        session = self._session or self._open()
        try:
            target, proxy_url, proxy_auth, context = self._target(url, proxy, ca_bundle)
        except (OSError, ssl.SSLError, ValueError) as exc:  # unreadable CA bundle, malformed proxy URL
            raise UpstreamConnectError(f"{type(exc).__name__}: {exc}") from None
        counter = [0]
        token = _resends.set(counter)
        try:
            response = await session.request(
                method, target, data=body, headers=headers, proxy=proxy_url, proxy_auth=proxy_auth,
                ssl=context if context is not None else True,
                timeout=self._timeout(connect_timeout, read_timeout), allow_redirects=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise _translate(exc) from None
        finally:
            _resends.reset(token)
        if response.status == 407 and proxy_url is not None and target.scheme == "http":
            response.close()  # the proxy answered (absolute-URI request), not the upstream
            raise UpstreamConnectError(f"proxy {proxy_url.host}:{proxy_url.port} refused: 407")
        return Response(response, counter[0])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._urls.clear()
