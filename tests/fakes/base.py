"""Fake upstream servers on real loopback sockets.

Each fake is an aiohttp.web application run in a background thread with its own
event loop. Behaviour is chosen per request through the *model name* the gateway
forwards, so a route target such as `mock:status=500` or `mock:first_delay=0.5,tokens=3`
selects it without any side channel:

    mock                      normal answer
    mock:status=500           error response with that status (provider's error body)
    mock:retry_after=2        adds a retry-after header to an error
    mock:hang                 accept, never answer
    mock:first_delay=0.5      wait before the first byte
    mock:token_delay=0.01     wait between stream chunks
    mock:tokens=50            number of content tokens
    mock:drop_after=3         close the connection after N stream chunks
    mock:garbage              200 with a body that is not the provider's format
    mock:html_error           502 with an HTML body (a proxy in front of the provider)
    mock:tools                answer with a tool call to the first tool sent
    mock:parallel_tools       answer with two tool calls
    mock:no_usage             omit usage
    mock:cached=100           report that many cached prompt tokens
    mock:status=429,fail_times=1   fail only the first request with this model string
    mock:stall_after=3        stop sending after N stream chunks, connection left open
    mock:cut_body             (non-stream) 200 headers and the start of a JSON body, then the
                              connection is aborted: a provider that crashed mid-answer
    mock:web_search           (Anthropic) when the request offers web_search_20250305: a
                              server_tool_use and a web_search_tool_result block first
    mock:linger=0.5           keep a finished stream open that long before closing it
    mock:agent_turn           a real agent CLI's turn: while the conversation holds no tool
                              result, call the CLI's shell tool (Codex exec_command, Claude
                              Code Bash, opencode bash) to echo AGENT_MARKER; then answer text

Stream shapes real servers send (SSE streams; combine freely):
    mock:nospace              `data:{...}` / `event:name` without the optional space (WHATWG SSE allows it)
    mock:split=1              every event written in pieces of N bytes, one TCP write each
    mock:keepalive            `: keep-alive` comment lines between events (OpenRouter, proxies)
    mock:crlf                 CRLF line ends
    mock:interleave           (OpenAI chat) parallel tool-call argument fragments interleaved

Every request is recorded (`server.requests`) and every stream the client closed
early is counted (`server.disconnects`), so tests can assert what the gateway sent.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Behaviour:
    model: str
    status: int | None = None
    retry_after: str | None = None
    hang: bool = False
    first_delay: float = 0.0
    token_delay: float = 0.0
    tokens: int | None = None
    drop_after: int | None = None
    garbage: bool = False
    html_error: bool = False
    tools: bool = False
    parallel_tools: bool = False
    no_usage: bool = False
    cached: int = 0
    flags: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, model: str) -> "Behaviour":
        b = cls(model=model)
        _, _, spec = (model or "").partition(":")
        for part in filter(None, spec.split(",")):
            key, _, value = part.partition("=")
            b.flags[key] = value
            if key == "status":
                b.status = int(value)
            elif key == "retry_after":
                b.retry_after = value
            elif key in ("first_delay", "token_delay"):
                setattr(b, key, float(value))
            elif key in ("tokens", "drop_after", "cached"):
                setattr(b, key, int(value))
            elif key in ("hang", "garbage", "html_error", "tools", "parallel_tools", "no_usage"):
                setattr(b, key, True)
        return b

    def words(self) -> list[str]:
        if self.tokens is not None:
            return [("tok%d" % i if i == 0 else " tok%d" % i) for i in range(self.tokens)]
        text = "Hello world this is a mock completion"
        first, *rest = text.split(" ")
        return [first] + [" " + w for w in rest]


AGENT_MARKER = "junction-agent-turn"
# The shell tool of each real agent CLI, with arguments that run harmlessly.
AGENT_TOOL_ARGS = {
    "exec_command": {"cmd": f"echo {AGENT_MARKER}"},  # Codex
    "shell": {"command": ["echo", AGENT_MARKER]},  # older Codex
    "shell_command": {"command": f"echo {AGENT_MARKER}"},
    "Bash": {"command": f"echo {AGENT_MARKER}", "description": "Print a marker"},  # Claude Code
    "bash": {"command": f"echo {AGENT_MARKER}", "description": "Print a marker"},  # opencode
}


def agent_call(names: list[str], answered: bool) -> tuple[str, dict] | None:
    """mock:agent_turn: the (tool, arguments) to call, or None once a tool result came back
    (then the fake answers text and the CLI's turn ends)."""
    if answered:
        return None
    for name in names:
        if name in AGENT_TOOL_ARGS:
            return name, AGENT_TOOL_ARGS[name]
    raise AssertionError(f"agent_turn: none of the CLI's tools is known to the fake: {names}")


def prompt_tokens_of(body: dict) -> int:
    """Deterministic stand-in for a tokenizer: ~4 bytes a token."""
    return max(1, len(json.dumps(body.get("messages", body.get("input", "")))) // 4)


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict
    body: dict | None
    raw: bytes


class FakeServer:
    """Run an aiohttp app on 127.0.0.1:<free port> in a thread."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.rejected: list[str] = []  # error bodies of requests the strict checks refused
        self.disconnects = 0
        self.completed_streams = 0
        self.failures: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # subclasses add routes
    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeServer":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            self.routes(app)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name=type(self).__name__)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop and self._runner:
            async def shutdown() -> None:
                # Handlers hanging on purpose (hang, stall_after) would outlive the loop.
                others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in others:
                    task.cancel()
                await asyncio.gather(*others, return_exceptions=True)
                await self._runner.cleanup()

            try:
                asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
            except Exception:  # the thread is a daemon: exiting is enough
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def reset(self) -> None:
        self.requests.clear()
        self.rejected.clear()
        self.disconnects = 0
        self.completed_streams = 0

    def last(self) -> Recorded:
        return self.requests[-1]

    async def record(self, request: web.Request) -> Recorded:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rec = Recorded(request.method, request.path, request.query_string,
                       {k.lower(): v for k, v in request.headers.items()}, body, raw)
        self.requests.append(rec)
        return rec

    @staticmethod
    def reshape(chunks, behaviour: Behaviour) -> list[bytes]:
        """Apply the SSE shape options (nospace, keepalive, crlf) to a list of events."""
        flags = behaviour.flags
        out = list(chunks)
        if "nospace" in flags:
            out = [c.replace(b"data: ", b"data:").replace(b"event: ", b"event:") for c in out]
        if "keepalive" in flags:
            out = [piece for c in out for piece in (b": keep-alive\n\n", c)]
        if "crlf" in flags:
            out = [c.replace(b"\n", b"\r\n") for c in out]
        return out

    async def stream(self, request: web.Request, chunks, behaviour: Behaviour,
                     content_type: str = "text/event-stream", headers: dict | None = None) -> web.StreamResponse:
        """Write `chunks` (bytes) honouring first_delay/token_delay/drop_after; count disconnects."""
        if content_type == "text/event-stream":
            chunks = self.reshape(chunks, behaviour)
        split = int(behaviour.flags.get("split") or 0)
        resp = web.StreamResponse(status=200, headers={"Content-Type": content_type, "Cache-Control": "no-cache",
                                                       **(headers or {})})
        if behaviour.first_delay:
            await asyncio.sleep(behaviour.first_delay)
        try:
            await resp.prepare(request)
            for i, chunk in enumerate(chunks):
                if behaviour.drop_after is not None and i >= behaviour.drop_after:
                    # Abort the TCP connection mid-stream, as a crashed provider would.
                    request.transport.abort()
                    return resp
                if "stall_after" in behaviour.flags and i >= int(behaviour.flags["stall_after"]):
                    await asyncio.sleep(3600)  # connection open, no more bytes
                if i and behaviour.token_delay:
                    await asyncio.sleep(behaviour.token_delay)
                if split:
                    for j in range(0, len(chunk), split):
                        await resp.write(chunk[j:j + split])
                        await asyncio.sleep(0)  # let each piece leave as its own write
                else:
                    await resp.write(chunk)
            if "linger" in behaviour.flags:
                await asyncio.sleep(float(behaviour.flags["linger"]))
            await resp.write_eof()
            self.completed_streams += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        return resp

    async def maybe_fail(self, request: web.Request, behaviour: Behaviour, error_body) -> web.StreamResponse | None:
        """Shared failure behaviours: hang, html_error, status=N (with the provider's error body)."""
        if behaviour.hang:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.disconnects += 1
                raise
        if behaviour.drop_after == 0:
            # Connection dropped before any response byte.
            request.transport.abort()
            raise ConnectionResetError("dropped by fake")
        if behaviour.first_delay and not request.get("stream"):
            await asyncio.sleep(behaviour.first_delay)
        if "cut_body" in behaviour.flags and not request.get("stream"):
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                           "Content-Length": "4096"})
            await resp.prepare(request)
            await resp.write(b'{"id":"cut","choices":[{"index":0,"message":{"role":"assistant","content":"Hel')
            await asyncio.sleep(0.05)  # let the part leave before the abort
            request.transport.abort()
            return resp
        if behaviour.html_error:
            return web.Response(status=502, text="<html><body><h1>502 Bad Gateway</h1></body></html>",
                                content_type="text/html")
        if behaviour.status and "fail_times" in behaviour.flags:
            # Fail only the first N requests for this exact model string, then answer.
            seen = self.failures.get(behaviour.model, 0)
            self.failures[behaviour.model] = seen + 1
            if seen >= int(behaviour.flags["fail_times"]):
                return None
        if behaviour.status:
            headers = {"retry-after": behaviour.retry_after} if behaviour.retry_after else {}
            return web.json_response(error_body(behaviour.status), status=behaviour.status, headers=headers)
        if behaviour.garbage:
            return web.Response(status=200, text="this is not json {", content_type="application/json")
        return None
