"""What `make run` prints (`serve --log-format text`): one line per request with method,
path (no key), status, latency and, for proxied requests, route and provider; no
favicon 404, no line for a static file served."""

from __future__ import annotations

import re
import time

import httpx

from . import world
from .test_workers import CHAT, ServeProcess


LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} [A-Z]+ /")


def request_lines(logs: str, skip: int) -> list[str]:
    """The request lines (other lines, such as a warning about a provider, may come too)."""
    return [line for line in logs.splitlines()[skip:] if LINE.match(line)]


def test_the_console_shows_one_line_per_request_and_never_the_key(fake_openai):
    upstream = world.provider(fake_openai.url + "/v1")
    key = world.alice_key()
    server = ServeProcess(["--workers", "1", "--no-celery", "--log-format", "text"])
    try:
        before = len(server.logs().splitlines())
        with httpx.Client(base_url=server.url, timeout=30) as client:
            ok = client.post("/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                             json={"model": upstream.name, "messages": CHAT})
            in_path = client.post(f"/k/{key}/v1/chat/completions",
                                  json={"model": upstream.name, "messages": CHAT})
            assert ok.status_code == in_path.status_code == 200
            assert client.get("/v1/models", headers={"authorization": "Bearer jk-wrong"}).status_code == 401
            assert client.get("/admin/login/").status_code == 200
            assert client.get("/favicon.ico", follow_redirects=True).status_code == 200
        deadline = time.time() + 5
        while len(request_lines(server.logs(), before)) < 5 and time.time() < deadline:
            time.sleep(0.1)
        logs = server.logs()
    finally:
        server.stop()
    assert key not in logs
    lines = request_lines(logs, before)
    requests = [line.split(" ", 1)[1] for line in lines]
    assert len(requests) == 5, lines  # the icon the favicon redirects to is a static file: no line
    assert requests[0].startswith("POST /v1/chat/completions 200 ")
    assert requests[0].endswith(f" ms route=provider:{upstream.name} provider={upstream.name} model=mock")
    assert requests[1].startswith(f"POST /k/{key[:10]}…/v1/chat/completions 200 ")
    assert requests[2].startswith("GET /v1/models 401 ")
    assert requests[3].startswith("GET /admin/login/ 200 ")
    assert requests[4].startswith("GET /favicon.ico 301 ")
    assert not any(" 404 " in line for line in requests)
