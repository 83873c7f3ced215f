"""Benchmark: an upstream HTTP client alone (no gateway), the figure of issue 17's table.

    python -m tests.bench_client                      (gateway's client vs. plain aiohttp vs. httpx)
    python -m tests.bench_client --clients gateway,gateway-aiohttp --rounds 4 --seconds 5

One client process pinned to core 0 on uvloop sends 32 concurrent keep-alive POSTs
of a ~200-byte chat request to the fake OpenAI upstream (tests/fakes/openai.py) on
core 1 for `--seconds`; the client's CPU comes from getrusage. Each client runs in a
fresh process, rounds alternate the order (A/B, B/A) because the machine is noisy.
Not a test: nothing here asserts a speed.

Clients: `gateway` is what the proxy uses (providers.http.Client: the hand-written
HTTP/1.1 client, with the request options the adapters pass); `gateway-aiohttp` the
aiohttp client configured for the hot path, kept for the A/B
(tests/bench_clients/aiohttp_client.py, same calls); `aiohttp` a plain
ClientSession used the usual way (`async with session.post(...)`); `aiohttp-2025` the
gateway's aiohttp usage before the hand-written client; `httpx` httpx's AsyncClient.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time

from tests.bench import ROOT, free_port, pinned, wait_up

BODY = json.dumps(
    {
        "model": "mock",
        "messages": [
            {"role": "system", "content": "You are a coding agent. Answer briefly."},
            {
                "role": "user",
                "content": "Write hello world in Python, then explain it in one sentence please.",
            },
        ],
        "max_tokens": 64,
    }
).encode()
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-x", "accept-encoding": "identity"}


async def drive(send, seconds: float, concurrency: int = 32) -> int:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker():
        nonlocal done
        while time.perf_counter() < deadline:
            await send()
            done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


async def run_client(name: str, url: str, seconds: float) -> tuple[int, float, float]:
    """Returns (requests, wall seconds, CPU seconds) for the timed part (after a warm-up)."""
    if name in ("gateway", "gateway-aiohttp"):
        if name == "gateway":
            from providers.http import Client
        else:
            from tests.bench_clients.aiohttp_client import Client

        client = Client()

        async def send():
            response = await client.request("POST", url, HEADERS, BODY, connect_timeout=5, read_timeout=60)
            await response.read()
            response.close()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")

        closer = client.close
    elif name == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession()

        async def send():
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")

        closer = session.close
    elif name == "aiohttp-2025":
        # The hot path before the hand-written client (commit 11d5e57..6244b6c^): a pooled session,
        # a ClientTimeout and a URL parsed per request; the configuration the 0.57 ms figure came from.
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=0, limit_per_host=0, keepalive_timeout=60, ttl_dns_cache=300, enable_cleanup_closed=True
            ),
            auto_decompress=False,
            trust_env=False,
            skip_auto_headers=("User-Agent",),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

        async def send():
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60)
            response = await session.request(
                "POST", url, headers=HEADERS, data=BODY, timeout=timeout, allow_redirects=False
            )
            await response.read()
            response.release()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")

        closer = session.close
    elif name == "httpx":
        import httpx

        hx = httpx.AsyncClient(limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))

        async def send():
            response = await hx.post(url, content=BODY, headers=HEADERS)
            await response.aread()
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}")

        closer = hx.aclose
    else:
        raise SystemExit(f"unknown client {name}")
    await drive(send, 0.5)  # warm the pool
    cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    count = await drive(send, seconds)
    cpu1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    result = closer()
    if asyncio.iscoroutine(result):
        await result
    return count, t1 - t0, (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)


def child(args) -> None:
    import uvloop

    count, wall, cpu = uvloop.run(run_client(args.child, args.url, args.seconds))
    print(json.dumps({"count": count, "wall": wall, "cpu": cpu}))


def main(args) -> None:
    port = free_port()
    upstream = subprocess.Popen(
        pinned(1, [sys.executable, "-m", "tests.fakes.openai", str(port)]),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    clients = args.clients.split(",")
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
    try:
        asyncio.run(wait_up(f"http://127.0.0.1:{port}/v1/models"))
        for rnd in range(args.rounds):
            for name in clients if rnd % 2 == 0 else clients[::-1]:
                out = subprocess.run(
                    pinned(
                        0,
                        [
                            sys.executable,
                            "-m",
                            "tests.bench_client",
                            "--child",
                            name,
                            "--url",
                            url,
                            "--seconds",
                            str(args.seconds),
                        ],
                    ),
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    env={**os.environ},
                )
                if out.returncode != 0:
                    print(f"{name}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                rows[name].append((r["count"] / r["wall"], r["cpu"] / max(1, r["count"]) * 1000))
                print(
                    f"round {rnd + 1} {name}: {rows[name][-1][0]:.0f} req/s, "
                    f"{rows[name][-1][1]:.3f} ms CPU/request",
                    file=sys.stderr,
                )
    finally:
        upstream.terminate()
        upstream.wait(10)
    print(f"\n{args.rounds} round(s), {args.seconds:g} s each, c=32; ranges are min-max over the rounds")
    print("client   | req/s       | client CPU per request (ms)")
    print("---------|-------------|----------------------------")
    for name, values in rows.items():
        if not values:
            continue
        rps = [v[0] for v in values]
        cpu = [v[1] for v in values]
        print(f"{name:8} | {min(rps):,.0f}-{max(rps):,.0f} | {min(cpu):.3f}-{max(cpu):.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", default="gateway,aiohttp,httpx")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    a = parser.parse_args()
    child(a) if a.child else main(a)
