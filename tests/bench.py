"""Benchmark: the gateway vs. the fake upstream directly, in the same run.

    make bench            (or: python -m tests.bench --seconds 5)

Layout on a 2-core machine (design.md §2): the gateway (one Daphne process) is
pinned to core 0; the fake upstream and this load generator share core 1. Every
gateway feature on the request path is on: key auth, model resolution, usage
recording. Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
BODY = {"model": "mock", "messages": [{"role": "system", "content": "You are a coding agent."},
                                      {"role": "user", "content": "Write hello world in Python."}]}


def pinned(core: int | None, cmd: list[str]) -> list[str]:
    if core is not None and shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(core)] + cmd
    return cmd


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            try:
                async with s.get(url) as r:
                    await r.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def one(session, url, body, headers, stream) -> tuple[float, float]:
    """Returns (total seconds, seconds to first body byte)."""
    t0 = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as r:
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {(await r.read())[:200]!r}")
        if stream:
            first = None
            async for _ in r.content.iter_any():
                if first is None:
                    first = time.perf_counter() - t0
            return time.perf_counter() - t0, first or 0.0
        await r.read()
        t = time.perf_counter() - t0
        return t, t


async def latency(url, headers, model, stream, n, extra=None) -> list[tuple[float, float]]:
    body = json.dumps(dict(BODY, model=model, stream=stream, **(extra or {}))).encode()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        for _ in range(min(50, n)):
            await one(session, url, body, headers, stream)
        return [await one(session, url, body, headers, stream) for _ in range(n)]


async def throughput(url, headers, model, stream, concurrency, seconds,
                     extra=None) -> tuple[float, list[tuple[float, float]], int]:
    body = json.dumps(dict(BODY, model=model, stream=stream, **(extra or {}))).encode()
    results: list[tuple[float, float]] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        for _ in range(concurrency):  # warm the pool
            await one(session, url, body, headers, stream)
        deadline = time.perf_counter() + seconds
        start = time.perf_counter()

        async def worker():
            nonlocal errors
            while time.perf_counter() < deadline:
                try:
                    results.append(await one(session, url, body, headers, stream))
                except Exception:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return len(results) / elapsed, results, errors


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (and its threads) so far: the gateway's own cost,
    independent of what else the machine is doing."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] * 1000


def setup_gateway(data_dir: Path, upstream: str, port: int, translated_upstream: str | None) -> tuple[str, dict]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gateway.settings", "GATEWAY_DATA_DIR": str(data_dir),
           "DATABASE_URL": f"sqlite:///{data_dir / 'bench.sqlite3'}", "SECRET_KEY": "bench", "LOG_LEVEL": "ERROR"}
    script = f"""
import django; django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from gateway.config_file import import_config
from gateway.services import key_issue
providers = [{{"name": "fake", "type": "openai", "base_url": "{upstream}/v1", "model": "mock", "api_key": "sk-x",
              "models": [{{"id": "mock", "input_price": 2.5, "output_price": 10}}]}}]
if {translated_upstream!r}:
    providers.append({{"name": "fake-anthropic", "type": "anthropic", "base_url": {translated_upstream!r},
                      "model": "mock", "api_key": "sk-x"}})
# A route answered from the exact response cache after its first request (--cache rows).
routes = [{{"name": "cached", "targets": ["fake/mock:tokens=50"], "response_cache": True}}]
import_config({{"providers": providers, "routes": routes}})
print(key_issue(username="bench")[1])
"""
    key = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    return key, env


async def main(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="junction-bench-"))
    up_port, gw_port = free_port(), free_port()
    procs = []
    try:
        procs.append(subprocess.Popen(pinned(1, [sys.executable, "-m", "tests.fakes.openai", str(up_port)]),
                                      cwd=ROOT, stdout=subprocess.DEVNULL))
        upstream = f"http://127.0.0.1:{up_port}"
        anth_url = None
        if args.translated:
            anth_port = free_port()
            procs.append(subprocess.Popen(pinned(1, [sys.executable, "-m", "tests.fakes.anthropic",
                                                     str(anth_port)]), cwd=ROOT, stdout=subprocess.DEVNULL))
            anth_url = f"http://127.0.0.1:{anth_port}"
        key, env = setup_gateway(tmp, upstream, gw_port, anth_url)
        procs.append(subprocess.Popen(pinned(0, [sys.executable, "-m", "gateway.daphne_main", "-b", "127.0.0.1", "-p",
                                                 str(gw_port), "--verbosity", "0", "gateway.asgi:application"]),
                                      cwd=ROOT, env=env))
        gateway = f"http://127.0.0.1:{gw_port}"
        await wait_up(upstream + "/v1/models")
        await wait_up(gateway + "/health/live")
        os.sched_setaffinity(0, {1}) if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1 else None

        direct_h = {"content-type": "application/json", "authorization": "Bearer sk-x"}
        gw_h = {"content-type": "application/json", "authorization": f"Bearer {key}"}
        targets = [("direct", upstream + "/v1/chat/completions", direct_h, "mock"),
                   ("gateway", gateway + "/v1/chat/completions", gw_h, "fake")]
        tok = "mock:tokens=50"
        rows = []
        c1, c32, s32 = {}, {}, {}
        gateway_pid = procs[-1].pid
        cpu = {}
        for name, url, headers, model in targets:
            lat = await latency(url, headers, model, False, args.requests)
            c1[name] = [t for t, _ in lat]
            before = cpu_seconds(gateway_pid)
            rps, res, err = await throughput(url, headers, model, False, 32, args.seconds)
            if name == "gateway":
                cpu["json"] = (cpu_seconds(gateway_pid) - before) / max(1, len(res)) * 1000
            c32[name] = (rps, err)
            smodel = tok if name == "direct" else f"fake/{tok}"
            before = cpu_seconds(gateway_pid)
            srps, sres, serr = await throughput(url, headers, smodel, True, 32, args.seconds)
            if name == "gateway":
                cpu["stream"] = (cpu_seconds(gateway_pid) - before) / max(1, len(sres)) * 1000
            slat = await latency(url, headers, smodel, True, max(200, args.requests // 4))
            s32[name] = (srps, serr, [f for _, f in slat])
        if anth_url:
            url = gateway + "/v1/chat/completions"
            before = cpu_seconds(gateway_pid)
            srps, sres, serr = await throughput(url, gw_h, f"fake-anthropic/{tok}", True, 32, args.seconds)
            cpu["translated"] = (cpu_seconds(gateway_pid) - before) / max(1, len(sres)) * 1000
            slat = await latency(url, gw_h, f"fake-anthropic/{tok}", True, max(200, args.requests // 4))
            s32["translated"] = (srps, serr, [f for _, f in slat])

        if args.cache:
            url, zero = gateway + "/v1/chat/completions", {"temperature": 0}
            hit = [t for t, _ in await latency(url, gw_h, "cached", False, args.requests, zero)]
            before = cpu_seconds(gateway_pid)
            hrps, hres, herr = await throughput(url, gw_h, "cached", False, 32, args.seconds, zero)
            cpu["hit"] = (cpu_seconds(gateway_pid) - before) / max(1, len(hres)) * 1000
            before = cpu_seconds(gateway_pid)
            hsrps, hsres, hserr = await throughput(url, gw_h, "cached", True, 32, args.seconds, zero)
            cpu["stream_hit"] = (cpu_seconds(gateway_pid) - before) / max(1, len(hsres)) * 1000
            hslat = [f for _, f in await latency(url, gw_h, "cached", True, max(200, args.requests // 4), zero)]

        d, g = c1["direct"], c1["gateway"]
        rows.append(("non-stream c=1 p50 latency (ms)", f"{pct(d, 50):.2f}", f"{pct(g, 50):.2f}",
                     f"+{pct(g, 50) - pct(d, 50):.2f} ms"))
        rows.append(("non-stream c=1 p99 latency (ms)", f"{pct(d, 99):.2f}", f"{pct(g, 99):.2f}",
                     f"+{pct(g, 99) - pct(d, 99):.2f} ms"))
        rows.append(("non-stream c=32 (req/s)", f"{c32['direct'][0]:.0f}", f"{c32['gateway'][0]:.0f}",
                     f"errors: {c32['gateway'][1]}"))
        rows.append(("stream 50 tok c=32 (streams/s)", f"{s32['direct'][0]:.0f}", f"{s32['gateway'][0]:.0f}",
                     f"errors: {s32['gateway'][1]}"))
        fd, fg = s32["direct"][2], s32["gateway"][2]
        rows.append(("stream c=1 time to first byte p50 (ms)", f"{pct(fd, 50):.2f}", f"{pct(fg, 50):.2f}",
                     f"+{pct(fg, 50) - pct(fd, 50):.2f} ms"))
        if "translated" in s32:
            rps, err, ft = s32["translated"]
            rows.append(("translated OpenAI→Anthropic stream c=32 (streams/s)", "-", f"{rps:.0f}",
                         f"errors: {err}"))
            rows.append(("translated stream c=1 first byte p50 (ms)", "-", f"{pct(ft, 50):.2f}",
                         f"+{pct(ft, 50) - pct(fd, 50):.2f} ms vs direct OpenAI"))
        if args.cache:
            rows.append(("cache hit, non-stream c=1 p50 latency (ms)", "-", f"{pct(hit, 50):.2f}",
                         f"{pct(hit, 50) - pct(d, 50):+.2f} ms vs direct"))
            rows.append(("cache hit, non-stream c=32 (req/s)", "-", f"{hrps:.0f}",
                         f"errors: {herr}, CPU {cpu['hit']:.2f} ms/req"))
            rows.append(("cache hit, stream 50 tok c=32 (streams/s)", "-", f"{hsrps:.0f}",
                         f"errors: {hserr}, CPU {cpu['stream_hit']:.2f} ms/stream"))
            rows.append(("cache hit, stream c=1 first byte p50 (ms)", "-", f"{pct(hslat, 50):.2f}",
                         f"{pct(hslat, 50) - pct(fd, 50):+.2f} ms vs direct"))
        rows.append(("gateway CPU per non-stream request (ms)", "-", f"{cpu['json']:.2f}", "Daphne included"))
        rows.append(("gateway CPU per 50-token stream (ms)", "-", f"{cpu['stream']:.2f}", "Daphne included"))
        if "translated" in cpu:
            rows.append(("gateway CPU per translated stream (ms)", "-", f"{cpu['translated']:.2f}", ""))
        width = max(len(r[0]) for r in rows)
        print(f"\n{'measure'.ljust(width)} | direct | gateway | note")
        print(f"{'-' * width}-|--------|---------|-----")
        for r in rows:
            print(f"{r[0].ljust(width)} | {r[1]:>6} | {r[2]:>7} | {r[3]}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests for the c=1 latency")
    parser.add_argument("--translated", action="store_true", help="add the OpenAI→Anthropic translated row")
    parser.add_argument("--cache", action="store_true", help="add the response-cache hit rows")
    asyncio.run(main(parser.parse_args()))
