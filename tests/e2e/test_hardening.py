"""Hardening (issue 11): tenant isolation, hostile input, secrets in logs, metrics."""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest

from gateway.services import key_issue

from . import world


@pytest.fixture
def alice():
    return world.alice_key()


@pytest.fixture
def bob():
    return key_issue(username="bob", name="bob laptop")[1]


@pytest.fixture
def upstreams(fake_openai, fake_anthropic):
    return {
        "openai_chat": world.provider(fake_openai.url + "/v1", wire_api="chat"),
        "anthropic": world.provider(fake_anthropic.url, type="anthropic"),
        "openai_responses": world.provider(fake_openai.url + "/v1", wire_api="responses"),
    }


RESP_ID = re.compile(r"^resp_[0-9a-f]{32}$")


class TestStoredResponsesBelongToTheirUser:
    @pytest.mark.parametrize("upstream", ["openai_chat", "anthropic", "openai_responses"])
    @pytest.mark.parametrize("stream", [False, True])
    def test_ids_are_random_gateway_ids_and_only_the_owner_sees_them(
        self, gateway, alice, bob, upstreams, upstream, stream
    ):
        model = f"{upstreams[upstream].name}/mock"
        mine = openai.OpenAI(base_url=gateway.url + "/v1", api_key=alice, max_retries=0)
        if stream:
            events = list(mine.responses.create(model=model, input="Remember 42.", stream=True))
            ids = {e.response.id for e in events if hasattr(e, "response")}
            assert len(ids) == 1, ids  # created, in_progress and completed agree
            ident = ids.pop()
        else:
            ident = mine.responses.create(model=model, input="Remember 42.").id
        assert RESP_ID.match(ident), ident
        assert mine.responses.retrieve(ident).id == ident
        # Another alice key is the same user: allowed.
        other_alice = world.alice_key()
        r = httpx.get(
            f"{gateway.url}/v1/responses/{ident}", headers={"authorization": f"Bearer {other_alice}"}
        )
        assert r.status_code == 200 and r.json()["id"] == ident
        # bob gets the same 404 as for an id that does not exist, and nothing is sent upstream.
        r = httpx.get(f"{gateway.url}/v1/responses/{ident}", headers={"authorization": f"Bearer {bob}"})
        unknown = httpx.get(
            f"{gateway.url}/v1/responses/resp_{'0' * 32}", headers={"authorization": f"Bearer {bob}"}
        )
        assert r.status_code == unknown.status_code == 404
        assert r.json()["error"]["message"].replace(ident, "X") == unknown.json()["error"]["message"].replace(
            f"resp_{'0' * 32}", "X"
        )
        r = httpx.post(
            gateway.url + "/v1/responses",
            headers={"authorization": f"Bearer {bob}"},
            json={"model": model, "input": "What number?", "previous_response_id": ident},
        )
        assert r.status_code == 404 and "not found" in r.json()["error"]["message"]
        second = mine.responses.create(model=model, input="What number?", previous_response_id=ident)
        assert RESP_ID.match(second.id) and second.id != ident


def _raw_exchange(
    port: int, data: bytes, timeout: float = 10.0, then: bytes = b""
) -> tuple[int, dict, bytes]:
    """Send raw bytes, read one response (status, headers, body) or what arrived before close."""
    import socket
    import time

    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    started = time.time()
    sock.sendall(data)
    if then:
        sock.sendall(then)
    chunks = []
    try:
        while time.time() - started < timeout:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            raw = b"".join(chunks)
            head, sep, body = raw.partition(b"\r\n\r\n")
            if sep:
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if length and len(body) >= int(length.group(1)):
                    break
    except (ConnectionResetError, TimeoutError):
        pass
    finally:
        sock.close()
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head:
        return 0, {}, b""
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def _post_head(path: str, length: int, extra: str = "", content_type: str = "application/json") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


class TestHostileInput:
    @pytest.mark.parametrize("stream", [False, True])
    def test_a_model_name_outside_latin1_is_answered_with_a_percent_encoded_header(
        self, gateway, alice, upstreams, stream
    ):
        from urllib.parse import quote

        name = upstreams["openai_chat"].name
        r = httpx.post(
            gateway.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {alice}"},
            timeout=10,
            json={"model": f"{name}/模型", "stream": stream, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200, r.text
        assert r.headers["x-gateway-model"] == quote("模型")
        assert "Hello" in r.text

    @pytest.mark.parametrize("path,fmt", [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")])
    def test_a_64kb_header_is_a_431_in_the_clients_format(self, gateway, alice, path, fmt):
        r = httpx.post(
            gateway.url + path,
            headers={"authorization": f"Bearer {alice}", "x-junk": "a" * 65536},
            json={"model": "x", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        )
        assert r.status_code == 431
        body = r.json()
        if fmt == "anthropic":
            assert body["type"] == "error" and "header" in body["error"]["message"]
        else:
            assert "header" in body["error"]["message"] and body["error"]["type"]

    def test_many_headers_adding_up_over_the_limit_are_a_431(self, gateway, alice):
        junk = {f"x-junk-{i}": "a" * 1000 for i in range(70)}
        r = httpx.post(
            gateway.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {alice}", **junk},
            json={"model": "x", "messages": [{"role": "user", "content": "x"}]},
        )
        assert r.status_code == 431 and "header" in r.json()["error"]["message"]

    @pytest.mark.parametrize(
        "path,fmt",
        [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic"), ("/api/chat", "ollama")],
    )
    def test_a_too_large_content_length_is_a_413_before_the_body_is_read(self, gateway, alice, path, fmt):
        from tests.environment import MAX_BODY

        # Only the headers are sent: the answer must not wait for a body that never comes.
        status, headers, body = _raw_exchange(
            gateway.port, _post_head(path, MAX_BODY + 1, f"x-api-key: {alice}\r\n"), timeout=5
        )
        assert status == 413
        payload = json.loads(body)
        message = payload["error"] if fmt == "ollama" else payload["error"]["message"]
        assert "limit" in message
        if fmt == "anthropic":
            assert payload["type"] == "error"

    def test_a_too_large_body_without_content_length_is_a_413(self, gateway, alice):
        from tests.environment import MAX_BODY

        def chunks():
            for _ in range(MAX_BODY // 65536 + 2):
                yield b"a" * 65536

        r = httpx.post(
            gateway.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {alice}"},
            content=chunks(),
            timeout=30,
        )
        assert r.status_code == 413 and "limit" in r.json()["error"]["message"]

    @pytest.mark.parametrize(
        "content_type", ["text/plain", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]
    )
    @pytest.mark.parametrize("path,fmt", [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")])
    def test_a_content_type_other_than_json_is_a_415_in_the_clients_format(
        self, gateway, alice, content_type, path, fmt
    ):
        r = httpx.post(
            gateway.url + path,
            headers={"x-api-key": alice, "content-type": content_type},
            content=b'{"model": "x", "messages": []}',
            timeout=10,
        )
        assert r.status_code == 415, r.text
        body = r.json()
        assert "application/json" in body["error"]["message"]
        if fmt == "anthropic":
            assert body["type"] == "error"

    def test_json_with_a_charset_and_no_content_type_are_accepted(self, gateway, alice, upstreams):
        payload = json.dumps(
            {
                "model": f"{upstreams['openai_chat'].name}/mock",
                "messages": [{"role": "user", "content": "hi"}],
            }
        ).encode()
        for content_type in ("application/json; charset=utf-8", None):
            headers = {"authorization": f"Bearer {alice}"}
            if content_type:
                headers["content-type"] = content_type
            r = httpx.post(gateway.url + "/v1/chat/completions", headers=headers, content=payload)
            assert r.status_code == 200, (content_type, r.text)


@pytest.fixture(scope="module")
def impatient_gateway():
    from .conftest import GatewayProcess

    server = GatewayProcess({"GATEWAY_BODY_TIMEOUT": "1.5"})
    yield server
    server.stop()


class TestRequestsThatNeverComplete:
    @pytest.mark.parametrize("path,fmt", [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")])
    def test_a_body_that_never_completes_is_a_408_after_the_timeout(
        self, impatient_gateway, alice, path, fmt
    ):
        import time

        started = time.time()
        head = _post_head(path, 1000, f"x-api-key: {alice}\r\n")
        status, _, body = _raw_exchange(impatient_gateway.port, head, timeout=10, then=b'{"model": ')
        assert status == 408 and 1.0 < time.time() - started < 6
        payload = json.loads(body)
        assert "time" in payload["error"]["message"]
        if fmt == "anthropic":
            assert payload["type"] == "error"

    def test_headers_that_never_complete_are_cut_off_too(self, impatient_gateway):
        import time

        started = time.time()
        status, _, _ = _raw_exchange(
            impatient_gateway.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n", timeout=10
        )
        assert status == 408 and time.time() - started < 6


class TestNoKeyInAnyLog:
    def test_the_access_log_redacts_path_keys_and_is_private(self, alice, tmp_path, upstreams):
        import os
        import subprocess
        import sys
        import time

        from .conftest import ROOT, SERVER_ENV, free_port

        log_file = tmp_path / "access.log"
        port = free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.daphne_main",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "--verbosity",
                "0",
                "--access-log",
                str(log_file),
                "gateway.asgi:application",
            ],
            cwd=ROOT,
            env={**os.environ, **SERVER_ENV},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.time() + 30
            while time.time() < deadline:
                try:
                    httpx.get(url + "/health/live", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            assert httpx.get(f"{url}/k/{alice}/v1/models").status_code == 200
            httpx.post(
                f"{url}/k/{alice}/v1/chat/completions",
                json={
                    "model": f"{upstreams['openai_chat'].name}/mock",
                    "messages": [{"role": "user", "content": "hi"}],
                },
            )
            httpx.get(f"{url}/nowhere/{alice}")  # a key anywhere in a path
            time.sleep(0.3)
        finally:
            proc.terminate()
            _, stderr = proc.communicate(timeout=15)
        text = log_file.read_text()
        assert "/v1/models" in text and "/v1/chat/completions" in text
        assert alice not in text and alice[:10] in text
        assert alice not in stderr.decode(errors="replace")
        assert (os.stat(log_file).st_mode & 0o777) == 0o600

    def test_log_records_of_any_logger_are_redacted(self, alice, caplog):
        import logging

        with caplog.at_level(logging.INFO):
            logging.getLogger("junction.proxy").warning(
                "upstream said %s for /k/%s/v1/chat", f"key={alice}", alice
            )
            logging.getLogger("django.request").error("Not Found: /k/%s/admin", "jk-short")
            try:
                raise ValueError(f"bad key {alice}")
            except ValueError:
                logging.getLogger("daphne.server").exception("boom")
        text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
        assert alice not in text and alice[:10] + "…" in text
        assert "jk-short" not in text


class TestMetricsProtection:
    def test_without_a_token_metrics_are_for_loopback_only(self, gateway):
        assert httpx.get(gateway.url + "/metrics").status_code == 200
        # Through a proxy (even one on loopback) the client is not local.
        r = httpx.get(gateway.url + "/metrics", headers={"x-forwarded-for": "203.0.113.9"})
        assert r.status_code == 401 and "GATEWAY_METRICS_TOKEN" in r.json()["error"]

    def test_a_server_bound_outside_loopback_wants_the_token(self):
        import asyncio

        from django.test import override_settings

        from gateway.proxy import app

        async def call(scope_server, client, headers=()):
            sent = []

            async def send(message):
                sent.append(message)

            scope = {"server": scope_server, "client": client, "headers": list(headers)}
            await app.metrics(None, scope, None, send, None)  # metrics() reads no gateway state
            return sent[0]["status"]

        outside = (("10.1.2.3", 3000), ("10.1.2.4", 5555))
        with override_settings(GATEWAY_METRICS_TOKEN="", GATEWAY_METRICS_PUBLIC=False):
            assert asyncio.run(call(*outside)) == 401
            assert asyncio.run(call(("127.0.0.1", 3000), ("127.0.0.1", 5555))) == 200
        with override_settings(GATEWAY_METRICS_TOKEN="", GATEWAY_METRICS_PUBLIC=True):
            assert asyncio.run(call(*outside)) == 200
        with override_settings(GATEWAY_METRICS_TOKEN="s3cret", GATEWAY_METRICS_PUBLIC=False):
            assert asyncio.run(call(*outside)) == 401
            assert asyncio.run(call(("127.0.0.1", 3000), ("127.0.0.1", 5555))) == 401
            assert asyncio.run(call(*outside, headers=[(b"authorization", b"Bearer s3cret")])) == 200

    def test_client_chosen_model_names_fold_into_other(self, gateway, alice, upstreams):
        name = upstreams["openai_chat"].name
        for i in range(30):
            r = httpx.post(
                gateway.url + "/v1/chat/completions",
                headers={"authorization": f"Bearer {alice}"},
                json={"model": f"{name}/invented-{i}", "messages": [{"role": "user", "content": "x"}]},
            )
            assert r.status_code == 200
        r = httpx.post(
            gateway.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {alice}"},
            json={"model": f"{name}/mock", "messages": [{"role": "user", "content": "x"}]},
        )
        assert r.status_code == 200
        import time

        time.sleep(0.3)
        text = httpx.get(gateway.url + "/metrics").text
        assert "invented-" not in text
        assert f'provider="{name}"' in text and 'model="other"' in text and 'model="mock"' in text


def test_no_header_value_can_fail_the_response():
    from gateway.proxy.context import RequestContext
    from gateway.proxy.io import encode_headers

    ctx = RequestContext("chat.completions")
    ctx.route, ctx.provider, ctx.model = "路线", "p\r\nset-cookie: x", "模型"
    headers = dict(encode_headers(ctx.response_headers()))
    assert (
        headers[b"x-gateway-model"] == b"%E6%A8%A1%E5%9E%8B" and b"\n" not in headers[b"x-gateway-provider"]
    )
    assert encode_headers({"x-other": "ünïcødé 模"})[0][1].isascii()
