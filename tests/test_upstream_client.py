"""The hot path's HTTP/1.1 client against raw asyncio servers on loopback that
answer byte for byte what each test needs.

JUNCTION_TEST_UPSTREAM_CLIENT=aiohttp runs the same tests against the aiohttp client kept
for the A/B benchmark (tests/bench_clients/aiohttp_client.py); it fails three: aiohttp verifies an https://
proxy with the system store only (not the CA bundle) and takes no proxy URL without a scheme."""

from __future__ import annotations

import asyncio
import datetime
import os
import ssl
import tempfile
import time

import pytest

from providers import upstream_client as client_module
from providers.upstream_client import Client, UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout
from tests.fakes.forward_proxy import ForwardProxy

if os.environ.get("JUNCTION_TEST_UPSTREAM_CLIENT") == "aiohttp":
    from tests.bench_clients import aiohttp_client as client_module
    from tests.bench_clients.aiohttp_client import Client  # noqa: F811


class RawServer:
    """Calls `handler(reader, writer)` for each connection; counts connections."""

    def __init__(self, handler, ssl_context=None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.connections = 0
        self.closed_by_peer = 0

    async def __aenter__(self):
        async def on_connect(reader, writer):
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.closed_by_peer += 1
            finally:
                writer.close()

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()


async def read_request(reader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    body = await reader.readexactly(length)
    return head + body


def run(coro):
    return asyncio.run(coro)


def test_a_json_answer_is_read_and_the_connection_reused():
    async def handler(reader, writer):
        while True:
            try:
                request = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            # header names are case-insensitive (aiohttp writes `Host`)
            assert b"POST /v1/chat HTTP/1.1" in request and b"host: 127.0.0.1:" in request.lower()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}")
            await writer.drain()

    async def main():
        async with RawServer(handler) as server:
            client = Client()
            for _ in range(3):
                response = await client.request("POST", f"http://127.0.0.1:{server.port}/v1/chat",
                                                {"content-type": "application/json"}, b'{"a":1}',
                                                connect_timeout=2, read_timeout=2)
                assert response.status == 200 and response.headers["content-type"] == "application/json"
                assert await response.read() == b'{"ok":true}'
                response.close()
            assert server.connections == 1
            await client.close()

    run(main())


def test_a_chunked_stream_arrives_piece_by_piece():
    release = asyncio.Event

    async def main():
        gate = release()

        async def handler(reader, writer):
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            writer.write(b"6\r\ndata: \r\n")
            await writer.drain()
            await gate.wait()
            writer.write(b"3\r\nabc\r\n0\r\n\r\n")
            await writer.drain()

        async with RawServer(handler) as server:
            client = Client()
            response = await client.request("POST", f"http://127.0.0.1:{server.port}/", {}, b"",
                                            connect_timeout=2, read_timeout=2)
            chunks = response.chunks()
            assert await chunks.__anext__() == b"data: "  # before the rest was even written
            gate.set()
            assert [c async for c in chunks] == [b"abc"]
            response.close()

    run(main())


def test_a_body_without_length_is_read_until_the_server_closes():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
        await writer.drain()

    async def main():
        async with RawServer(handler) as server:
            response = await Client().request("GET", f"http://127.0.0.1:{server.port}/x", {}, b"",
                                              connect_timeout=2, read_timeout=2)
            assert await response.read() == b"until the end"
            response.close()

    run(main())


def test_an_idle_connection_the_server_closed_is_replaced_transparently():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        # then close without announcing it (keep-alive timeout on the server side)

    async def main():
        async with RawServer(handler) as server:
            client = Client()
            for _ in range(2):
                response = await client.request("POST", f"http://127.0.0.1:{server.port}/", {}, b"x",
                                                connect_timeout=2, read_timeout=2)
                assert await response.read() == b"ok"
                response.close()
                await asyncio.sleep(0.05)
            assert server.connections == 2

    run(main())


def test_silence_hits_the_read_timeout_and_refusal_is_a_connect_error():
    async def handler(reader, writer):
        await read_request(reader)
        await asyncio.sleep(10)

    async def main():
        async with RawServer(handler) as server:
            with pytest.raises(UpstreamTimeout):
                await Client().request("POST", f"http://127.0.0.1:{server.port}/", {}, b"",
                                       connect_timeout=2, read_timeout=0.2)
            port = server.port
        with pytest.raises(UpstreamConnectError):
            await Client().request("POST", f"http://127.0.0.1:{port}/", {}, b"", connect_timeout=2,
                                   read_timeout=1)

    run(main())


def test_a_stall_mid_body_is_a_timeout_and_garbage_is_a_protocol_error():
    async def stalling(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(10)

    async def garbage(reader, writer):
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()

    async def main():
        async with RawServer(stalling) as server:
            response = await Client().request("POST", f"http://127.0.0.1:{server.port}/", {}, b"",
                                              connect_timeout=2, read_timeout=0.2)
            with pytest.raises(UpstreamTimeout):
                await response.read()
            response.close()
        async with RawServer(garbage) as server:
            with pytest.raises(UpstreamProtocolError):
                await Client().request("POST", f"http://127.0.0.1:{server.port}/", {}, b"",
                                       connect_timeout=2, read_timeout=1)

    run(main())


def test_a_slow_stream_that_never_stalls_for_the_read_timeout_is_not_cut():
    """The read timeout bounds each silence, not the whole body: 8 chunks 0.1 s apart
    with a 0.25 s read timeout arrive in full."""
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(8):
            await asyncio.sleep(0.1)
            writer.write(b"4\r\ntick\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def main():
        async with RawServer(handler) as server:
            client = Client()
            response = await client.request("POST", f"http://127.0.0.1:{server.port}/", {}, b"",
                                            connect_timeout=2, read_timeout=0.25)
            assert b"".join([c async for c in response.chunks()]) == b"tick" * 8
            response.close()
            await client.close()

    run(main())


def test_abandoning_a_stream_closes_the_connection():
    async def main():
        closed = asyncio.Event()

        async def handler(reader, writer):
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            try:
                for _ in range(200):
                    writer.write(b"4\r\ntick\r\n")
                    await writer.drain()
                    await asyncio.sleep(0.01)
            except ConnectionError:
                closed.set()
                raise

        async with RawServer(handler) as server:
            client = Client()
            response = await client.request("POST", f"http://127.0.0.1:{server.port}/", {}, b"",
                                            connect_timeout=2, read_timeout=2)
            async for _ in response.chunks():
                break
            response.close()
            await asyncio.wait_for(closed.wait(), 5)

    run(main())


def self_signed_localhost() -> tuple[str, ssl.SSLContext]:
    """A self-signed CA certificate for `localhost`: (its PEM path, a server context)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tempfile.mkdtemp()
    cert_path, key_path = f"{folder}/cert.pem", f"{folder}/key.pem"
    open(cert_path, "wb").write(cert.public_bytes(serialization.Encoding.PEM))
    open(key_path, "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_path, key_path)
    return cert_path, server_ctx


def test_https_with_sni():
    cert_path, server_ctx = self_signed_localhost()
    seen_sni = []
    server_ctx.sni_callback = lambda sock, server_name, ctx: seen_sni.append(server_name)

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecure")
        await writer.drain()

    async def main():
        async with RawServer(handler, ssl_context=server_ctx) as server:
            response = await Client().request("POST", f"https://localhost:{server.port}/v1", {}, b"{}",
                                              connect_timeout=2, read_timeout=2, ca_bundle=cert_path)
            assert await response.read() == b"secure"
            response.close()
        assert seen_sni == ["localhost"]

    run(main())


def test_tls_is_verified_by_default():
    """Without the provider's CA bundle a self-signed upstream is refused before anything is sent."""
    _, server_ctx = self_signed_localhost()
    requests = []

    async def handler(reader, writer):
        requests.append(await read_request(reader))

    async def main():
        async with RawServer(handler, ssl_context=server_ctx) as server:
            client = Client()
            with pytest.raises(UpstreamConnectError, match="(?i)certificate"):
                await client.request("POST", f"https://localhost:{server.port}/v1", {}, b"{}",
                                     connect_timeout=2, read_timeout=2)
            await client.close()
        assert requests == []

    run(main())


# -- re-sends: only when the upstream cannot have received the request

def ok_handler(close_after: int | None = None, seen: list | None = None):
    """Answers `ok` to each request; closes the connection after `close_after` answers."""
    async def handler(reader, writer):
        answered = 0
        while close_after is None or answered < close_after:
            try:
                request = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            if seen is not None:
                seen.append(request)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            answered += 1
    return handler


def test_a_pooled_connection_found_closed_before_writing_is_replaced_and_counted(monkeypatch):
    """The server closed the idle connection but the event loop has not seen the FIN
    yet (it was busy): the connection is found closed before the request is written,
    the request goes out once on a new connection, and that counts as one re-send."""
    import socket
    import threading

    monkeypatch.setattr(client_module, "_POLL_AFTER_IDLE", 0.0)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    close_first = threading.Event()
    bodies = []

    def serve():  # a thread, so it can close while the client's event loop is blocked
        for index in range(2):
            conn, _ = listener.accept()
            data = b""
            while not data.endswith(b"\r\n\r\n") and b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            while len(body) < 1:
                body += conn.recv(65536)
            bodies.append(body)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            if index == 0:
                close_first.wait(5)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    async def main():
        client = Client()
        url = f"http://127.0.0.1:{port}/"
        first = await client.request("POST", url, {}, b"1", connect_timeout=2, read_timeout=2)
        assert await first.read() == b"ok" and first.resends == 0
        first.close()
        close_first.set()  # the server closes its end now ...
        time.sleep(0.2)  # ... while this loop is blocked: the pooled connection still looks open
        second = await client.request("POST", url, {}, b"2", connect_timeout=2, read_timeout=2)
        assert await second.read() == b"ok" and second.resends == 1
        second.close()
        await client.close()

    run(main())
    thread.join(5)
    listener.close()
    assert bodies == [b"1", b"2"]  # each request written once, the second on a new connection


def test_a_parting_408_on_an_idle_connection_is_not_taken_for_the_next_answer():
    """Some servers write `408 Request Timeout` on an idle keep-alive connection before
    closing it: that connection is dropped before writing (one re-send), the next
    request gets its own answer."""
    async def handler(reader, writer):
        answered = 0
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            answered += 1
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            if answered == 1:
                await asyncio.sleep(0.05)
                writer.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()

    async def main():
        async with RawServer(handler) as server:
            client = Client()
            statuses = []
            for _ in range(2):
                response = await client.request("POST", f"http://127.0.0.1:{server.port}/", {}, b"x",
                                                connect_timeout=2, read_timeout=2)
                statuses.append((response.status, await response.read(), response.resends))
                response.close()
                await asyncio.sleep(0.2)
            await client.close()
            assert statuses == [(200, b"ok", 0), (200, b"ok", 1)]
            assert server.connections == 2

    run(main())


def test_a_request_the_upstream_may_have_received_is_never_resent():
    """The connection breaks after the request was written and before any answer
    (the upstream may have started, and billed, it): an error, not a second send."""
    seen = []

    async def handler(reader, writer):
        seen.append(await read_request(reader))
        writer.transport.abort()

    async def main():
        async with RawServer(handler) as server:
            client = Client()
            with pytest.raises(UpstreamProtocolError):
                await client.request("POST", f"http://127.0.0.1:{server.port}/", {}, b"x", connect_timeout=2,
                                     read_timeout=2)
            await client.close()
        assert len(seen) == 1 and server.connections == 1

    run(main())


# -- proxies: a real forward proxy on loopback (tests/fakes/forward_proxy.py)

@pytest.fixture
def clean_proxy_env(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def forward_proxy():
    proxy = ForwardProxy().start()
    yield proxy
    proxy.stop()


def test_http_proxy_from_the_environment_gets_an_absolute_uri_request(clean_proxy_env, forward_proxy):
    clean_proxy_env.setenv("HTTP_PROXY", forward_proxy.url)

    async def main():
        async with RawServer(ok_handler()) as server:
            client = Client()
            response = await client.request("POST", f"http://127.0.0.1:{server.port}/v1/chat", {}, b"{}",
                                            connect_timeout=2, read_timeout=2)
            assert response.status == 200 and await response.read() == b"ok"
            response.close()
            await client.close()
            return server.port

    port = run(main())
    assert forward_proxy.seen == [("POST", f"http://127.0.0.1:{port}/v1/chat")]


def test_https_proxy_from_the_environment_tunnels_with_connect_and_tls_is_verified(clean_proxy_env,
                                                                                   forward_proxy):
    cert_path, server_ctx = self_signed_localhost()
    clean_proxy_env.setenv("HTTPS_PROXY", forward_proxy.url)
    seen_sni = []
    server_ctx.sni_callback = lambda sock, server_name, ctx: seen_sni.append(server_name)

    async def main():
        async with RawServer(ok_handler(), ssl_context=server_ctx) as server:
            client = Client()
            response = await client.request("POST", f"https://localhost:{server.port}/v1", {}, b"{}",
                                            connect_timeout=2, read_timeout=2, ca_bundle=cert_path)
            assert await response.read() == b"ok"
            response.close()
            # through the tunnel, the upstream's certificate is still checked
            with pytest.raises(UpstreamConnectError, match="(?i)certificate"):
                await client.request("POST", f"https://localhost:{server.port}/v2", {}, b"{}",
                                     connect_timeout=2, read_timeout=2)
            await client.close()
            return server.port

    port = run(main())
    assert forward_proxy.seen[0] == ("CONNECT", f"localhost:{port}")
    assert seen_sni and set(seen_sni) == {"localhost"}


def test_no_proxy_sends_directly(clean_proxy_env, forward_proxy):
    clean_proxy_env.setenv("HTTP_PROXY", forward_proxy.url)
    clean_proxy_env.setenv("NO_PROXY", "example.com,127.0.0.1")

    async def main():
        async with RawServer(ok_handler()) as server:
            client = Client()
            response = await client.request("POST", f"http://127.0.0.1:{server.port}/", {}, b"{}",
                                            connect_timeout=2, read_timeout=2)
            assert await response.read() == b"ok"
            response.close()
            await client.close()

    run(main())
    assert forward_proxy.seen == []


def test_the_provider_proxy_setting_wins_over_the_environment(clean_proxy_env, forward_proxy):
    """A per-provider proxy (with credentials) is used although the environment names
    another (dead) proxy; `direct` ignores the environment."""
    authed = ForwardProxy(credentials=("team", "s3cret")).start()
    clean_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # discard port: nothing listens

    async def main():
        async with RawServer(ok_handler()) as server:
            client = Client()
            url = f"http://127.0.0.1:{server.port}/v1"
            response = await client.request("POST", url, {}, b"{}", connect_timeout=2, read_timeout=2,
                                            proxy=authed.url)
            assert response.status == 200 and await response.read() == b"ok"
            response.close()
            response = await client.request("POST", url, {}, b"{}", connect_timeout=2, read_timeout=2,
                                            proxy="direct")
            assert await response.read() == b"ok"
            response.close()
            with pytest.raises(UpstreamConnectError):  # the environment's proxy, which is down
                await client.request("POST", url, {}, b"{}", connect_timeout=2, read_timeout=2)
            await client.close()
            return url

    try:
        url = run(main())
    finally:
        authed.stop()
    assert authed.seen == [("POST", url)]


def test_a_proxy_refusing_the_credentials_is_a_connect_error(clean_proxy_env):
    authed = ForwardProxy(credentials=("team", "s3cret")).start()
    cert_path, server_ctx = self_signed_localhost()

    async def main():
        async with RawServer(ok_handler(), ssl_context=server_ctx) as server:
            client = Client()
            with pytest.raises(UpstreamConnectError, match="407"):
                await client.request("POST", f"https://localhost:{server.port}/", {}, b"{}", connect_timeout=2,
                                     read_timeout=2, ca_bundle=cert_path,
                                     proxy=f"http://team:wrong@127.0.0.1:{authed.port}")
            await client.close()

    try:
        run(main())
    finally:
        authed.stop()


def test_a_missing_ca_bundle_is_a_connect_error():
    async def main():
        client = Client()
        with pytest.raises(UpstreamConnectError, match="FileNotFoundError"):
            await client.request("POST", "https://localhost:9/", {}, b"{}", connect_timeout=2, read_timeout=2,
                                 ca_bundle="/nonexistent/ca.pem")
        await client.close()

    run(main())


def test_a_proxy_refusing_the_credentials_for_a_plain_http_upstream_is_a_connect_error(clean_proxy_env):
    """Absolute-URI requests: the proxy's 407 is its own answer, not the upstream's."""
    authed = ForwardProxy(credentials=("team", "s3cret")).start()

    async def main():
        async with RawServer(ok_handler()) as server:
            client = Client()
            with pytest.raises(UpstreamConnectError, match="407"):
                await client.request("POST", f"http://127.0.0.1:{server.port}/", {}, b"{}", connect_timeout=2,
                                     read_timeout=2, proxy=f"http://team:wrong@127.0.0.1:{authed.port}")
            await client.close()
            return server.connections

    try:
        assert run(main()) == 0
    finally:
        authed.stop()


def test_a_tunnel_through_the_proxy_is_kept_alive_and_reused(clean_proxy_env, forward_proxy):
    cert_path, server_ctx = self_signed_localhost()

    async def main():
        async with RawServer(ok_handler(), ssl_context=server_ctx) as server:
            client = Client()
            for _ in range(3):
                response = await client.request("POST", f"https://localhost:{server.port}/v1", {}, b"{}",
                                                connect_timeout=2, read_timeout=2, ca_bundle=cert_path,
                                                proxy=forward_proxy.url)
                assert (response.status, await response.read(), response.resends) == (200, b"ok", 0)
                response.close()
            await client.close()
            return server.connections

    assert run(main()) == 1
    assert [method for method, _ in forward_proxy.seen] == ["CONNECT"]


def test_an_https_proxy_is_verified_and_carries_tunnels_and_plain_requests(clean_proxy_env):
    """TLS to the proxy itself (verified with the provider's CA bundle), then a CONNECT
    tunnel with the upstream's own TLS inside it, or an absolute-URI request."""
    cert_path, server_ctx = self_signed_localhost()
    tls_proxy = ForwardProxy(ssl_context=server_ctx, host="localhost").start()

    async def main():
        async with RawServer(ok_handler(), ssl_context=server_ctx) as secure, \
                RawServer(ok_handler()) as plain:
            client = Client()
            for url in (f"https://localhost:{secure.port}/v1", f"http://127.0.0.1:{plain.port}/v1"):
                response = await client.request("POST", url, {}, b"{}", connect_timeout=2, read_timeout=2,
                                                ca_bundle=cert_path, proxy=tls_proxy.url)
                assert (response.status, await response.read()) == (200, b"ok")
                response.close()
            with pytest.raises(UpstreamConnectError, match="(?i)certificate"):  # the proxy's, unknown CA
                await client.request("POST", f"http://127.0.0.1:{plain.port}/v2", {}, b"{}",
                                     connect_timeout=2, read_timeout=2, proxy=tls_proxy.url)
            await client.close()
            return secure.port, plain.port

    try:
        secure_port, plain_port = run(main())
    finally:
        tls_proxy.stop()
    assert tls_proxy.seen == [("CONNECT", f"localhost:{secure_port}"),
                              ("POST", f"http://127.0.0.1:{plain_port}/v1")]


def test_tls_tunnels_and_resends_on_uvloop(monkeypatch, clean_proxy_env, forward_proxy):
    """The gateway runs on uvloop (gateway/daphne_main.py): start_tls through a tunnel, the
    socket poll and the idle-bytes check behave the same there."""
    import sys

    import uvloop

    monkeypatch.setattr(sys.modules[__name__], "run", uvloop.run)
    test_https_with_sni()
    test_tls_is_verified_by_default()
    test_a_parting_408_on_an_idle_connection_is_not_taken_for_the_next_answer()
    test_a_pooled_connection_found_closed_before_writing_is_replaced_and_counted(monkeypatch)
    test_a_request_the_upstream_may_have_received_is_never_resent()
    test_https_proxy_from_the_environment_tunnels_with_connect_and_tls_is_verified(clean_proxy_env,
                                                                                   forward_proxy)
    test_a_proxy_refusing_the_credentials_is_a_connect_error(clean_proxy_env)
    test_an_https_proxy_is_verified_and_carries_tunnels_and_plain_requests(clean_proxy_env)


def test_proxy_urls_without_a_scheme_are_http_and_unsupported_ones_do_not_show_credentials(clean_proxy_env,
                                                                                         forward_proxy):
    clean_proxy_env.setenv("HTTP_PROXY", f"127.0.0.1:{forward_proxy.port}")  # as curl reads it

    async def main():
        async with RawServer(ok_handler()) as server:
            client = Client()
            url = f"http://127.0.0.1:{server.port}/v1"
            response = await client.request("POST", url, {}, b"{}", connect_timeout=2, read_timeout=2)
            assert await response.read() == b"ok"
            response.close()
            with pytest.raises(UpstreamConnectError, match="socks5://proxy.corp:1080") as refused:
                await client.request("POST", url, {}, b"{}", connect_timeout=2, read_timeout=2,
                                     proxy="socks5://team:s3cret@proxy.corp:1080")
            assert "s3cret" not in str(refused.value)
            await client.close()
            return url

    url = run(main())
    assert forward_proxy.seen == [("POST", url)]
