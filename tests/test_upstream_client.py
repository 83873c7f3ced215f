"""The hot path's HTTP/1.1 client against raw asyncio servers on loopback that
answer byte for byte what each test needs."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import tempfile

import pytest

from providers.http import Client, UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout


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


def test_https_with_sni():
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
