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
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
BODY = {"model": "mock", "messages": [{"role": "system", "content": "You are a coding agent."},
                                      {"role": "user", "content": "Write hello world in Python."}]}


#: upstream client -> the module that starts a gateway with it (`default`: the hot path's own,
#: providers/upstream_client.py; `aiohttp`: tests/bench_clients/aiohttp_client.py swapped in)
GATEWAYS = {"default": "gateway.daphne_main", "builtin": "gateway.daphne_main",
            "aiohttp": "tests.bench_clients.aiohttp_gateway"}
#: --floor: pass-through servers without the gateway's work (tests/bench_clients/passthrough.py)
FLOORS = {"floor-daphne": "bare Daphne pass-through", "floor-uvloop": "bare uvloop pass-through"}


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


async def measure(url: str, headers: dict, model: str, stream_model: str, args, pid: int | None) -> dict:
    """One target's figures; `pid`: the gateway process whose CPU per request is read."""
    out: dict = {}
    lat = await latency(url, headers, model, False, args.requests)
    out["c1"] = [t for t, _ in lat]
    before = cpu_seconds(pid) if pid else 0.0
    rps, res, err = await throughput(url, headers, model, False, 32, args.seconds)
    out["cpu_json"] = (cpu_seconds(pid) - before) / max(1, len(res)) * 1000 if pid else None
    out["c32"] = (rps, err, [t for t, _ in res])
    before = cpu_seconds(pid) if pid else 0.0
    srps, sres, serr = await throughput(url, headers, stream_model, True, 32, args.seconds)
    out["cpu_stream"] = (cpu_seconds(pid) - before) / max(1, len(sres)) * 1000 if pid else None
    slat = await latency(url, headers, stream_model, True, max(200, args.requests // 4))
    out["s32"] = (srps, serr, [f for _, f in slat])
    return out


async def main(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="junction-bench-"))
    up_port = free_port()
    procs = []
    # One gateway process per upstream client: `--clients builtin,aiohttp` is the issue-17 A/B (README).
    clients = args.clients.split(",") + (list(FLOORS) if args.floor else [])
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
        key, env = setup_gateway(tmp, upstream, 0, anth_url)
        gateways = {}  # client name -> (url, pid): one Daphne process per upstream client, same database
        for name in clients:
            port = free_port()
            if name not in GATEWAYS and name not in FLOORS:
                raise SystemExit(f"unknown client {name} (one of {', '.join(GATEWAYS)})")
            if name == "floor-uvloop":
                cmd = [sys.executable, "-m", "tests.bench_clients.passthrough", "uvloop", str(port)]
            elif name == "floor-daphne":
                cmd = [sys.executable, "-m", "tests.bench_clients.passthrough", "daphne", "-b", "127.0.0.1",
                       "-p", str(port), "--verbosity", "0", "tests.bench_clients.passthrough:application"]
            else:
                cmd = [sys.executable, "-m", GATEWAYS[name], "-b", "127.0.0.1", "-p", str(port), "--verbosity", "0",
                       "gateway.asgi:application"]
            proc = subprocess.Popen(pinned(0, cmd), cwd=ROOT, env={**env, "BENCH_UPSTREAM": upstream})
            procs.append(proc)
            gateways[name] = (f"http://127.0.0.1:{port}", proc.pid)
        await wait_up(upstream + "/v1/models")
        for url, _ in gateways.values():
            await wait_up(url + "/health/live")
        os.sched_setaffinity(0, {1}) if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1 else None

        direct_h = {"content-type": "application/json", "authorization": "Bearer sk-x"}
        gw_h = {"content-type": "application/json", "authorization": f"Bearer {key}"}
        if args.rss:
            await memory(args, *gateways[clients[0]], gw_h, tmp / "bench.sqlite3")
            return
        tok = "mock:tokens=50"
        results: dict[str, list[dict]] = {"direct": []}
        for name in clients:
            results[name] = []
        for rnd in range(args.rounds):
            # Alternate the order (A/B, then B/A) so drift on a noisy machine hits both alike.
            order = clients if rnd % 2 == 0 else clients[::-1]
            results["direct"].append(await measure(upstream + "/v1/chat/completions", direct_h, "mock", tok,
                                                   args, None))
            for name in order:
                url, pid = gateways[name]
                m = await measure(url + "/v1/chat/completions", gw_h, "fake", f"fake/{tok}", args, pid)
                if anth_url and name not in FLOORS:
                    before = cpu_seconds(pid)
                    srps, sres, serr = await throughput(url + "/v1/chat/completions", gw_h,
                                                        f"fake-anthropic/{tok}", True, 32, args.seconds)
                    m["cpu_translated"] = (cpu_seconds(pid) - before) / max(1, len(sres)) * 1000
                    slat = await latency(url + "/v1/chat/completions", gw_h, f"fake-anthropic/{tok}", True,
                                         max(200, args.requests // 4))
                    m["translated"] = (srps, serr, [f for _, f in slat])
                results[name].append(m)
        report(results, clients)
        if args.cache:
            await cache_hits(args, gateways[clients[0]], gw_h, results["direct"][-1])
        if args.workers:
            for _, pid in gateways.values():  # free the cores for the scaling runs; the fakes stay
                for p in procs:
                    if p.pid == pid:
                        p.terminate()
                        p.wait(10)
            await scaling(args, env, gw_h, upstream)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def rss_mib(pid: int) -> tuple[float, float]:
    """(resident, peak resident) MiB of a process."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def usage_rows(database: Path) -> tuple[int, int]:
    import sqlite3

    with sqlite3.connect(database, timeout=30) as db:
        return db.execute("SELECT COUNT(*), COUNT(DISTINCT request_id) FROM gateway_usagerecord").fetchone()


async def memory(args, url: str, pid: int, headers: dict, database: Path) -> None:
    """`--rss N`: N requests (one in ten a 50-token stream) at c=16 through one gateway process,
    its resident memory every N/10 requests, then the usage rows: exactly one per request."""
    plain = json.dumps(dict(BODY, model="fake")).encode()
    streamed = json.dumps(dict(BODY, model="fake/mock:tokens=50", stream=True)).encode()
    rows_before, distinct_before = usage_rows(database)
    sent = failed = 0
    step = max(1, args.rss // 10)
    print(f"{'requests':>9} | RSS MiB | peak MiB | s")
    print(f"{0:>9} | {rss_mib(pid)[0]:>7.1f} | {rss_mib(pid)[1]:>8.1f} | 0")
    start = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as session:
        while sent < args.rss:
            target = min(args.rss, sent + step)

            async def worker():
                nonlocal sent, failed
                while sent < target:
                    sent += 1
                    stream = sent % 10 == 0
                    try:
                        await one(session, url + "/v1/chat/completions", streamed if stream else plain, headers,
                                  stream)
                    except Exception:
                        failed += 1

            await asyncio.gather(*(worker() for _ in range(16)))
            resident, peak = rss_mib(pid)
            print(f"{sent:>9} | {resident:>7.1f} | {peak:>8.1f} | {time.perf_counter() - start:.0f}", flush=True)
    deadline = time.time() + 60
    rows = distinct = 0
    while time.time() < deadline:  # the writer flushes every GATEWAY_USAGE_FLUSH_SECONDS
        rows, distinct = usage_rows(database)
        if rows - rows_before >= sent:
            break
        await asyncio.sleep(0.5)
    print(f"requests sent {sent} (failed {failed}); usage rows added {rows - rows_before}, "
          f"distinct request ids {distinct - distinct_before}")


def report(results: dict[str, list[dict]], clients: list[str]) -> None:
    """One column per target; with several rounds each cell is the range over the rounds."""
    def cell(name: str, fn, fmt: str = "{:.2f}") -> str:
        values = [fn(m) for m in results[name]]
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        lo, hi = min(values), max(values)
        return fmt.format(lo) if len(values) == 1 or fmt.format(lo) == fmt.format(hi) \
            else f"{fmt.format(lo)}-{fmt.format(hi)}"

    rows = [
        ("non-stream c=1 p50 latency (ms)", lambda m: pct(m["c1"], 50), "{:.2f}"),
        ("non-stream c=1 p99 latency (ms)", lambda m: pct(m["c1"], 99), "{:.2f}"),
        ("non-stream c=32 (req/s)", lambda m: m["c32"][0], "{:.0f}"),
        ("non-stream c=32 errors", lambda m: m["c32"][1], "{:.0f}"),
        ("non-stream c=32 p50 latency (ms)", lambda m: pct(m["c32"][2], 50), "{:.2f}"),
        ("non-stream c=32 p99 latency (ms)", lambda m: pct(m["c32"][2], 99), "{:.2f}"),
        ("stream 50 tok c=32 (streams/s)", lambda m: m["s32"][0], "{:.0f}"),
        ("stream c=1 time to first byte p50 (ms)", lambda m: pct(m["s32"][2], 50), "{:.2f}"),
        ("translated OpenAI→Anthropic stream c=32 (streams/s)",
         lambda m: m["translated"][0] if "translated" in m else None, "{:.0f}"),
        ("translated stream c=1 first byte p50 (ms)",
         lambda m: pct(m["translated"][2], 50) if "translated" in m else None, "{:.2f}"),
        ("gateway CPU per non-stream request (ms)", lambda m: m["cpu_json"], "{:.3f}"),
        ("gateway CPU per 50-token stream (ms)", lambda m: m["cpu_stream"], "{:.3f}"),
        ("gateway CPU per translated stream (ms)", lambda m: m.get("cpu_translated"), "{:.3f}"),
    ]
    names = ["direct"] + clients
    heads = ["direct"] + [FLOORS.get(n, f"gateway ({n})" if n != "default" else "gateway") for n in names[1:]]
    table = [[label] + [cell(n, fn, fmt) for n in names] for label, fn, fmt in rows]
    widths = [max(len(r[i]) for r in table + [["measure"] + heads]) for i in range(len(heads) + 1)]
    print(f"\n{len(results['direct'])} round(s); ranges are min-max over the rounds")
    print(" | ".join(h.ljust(w) for h, w in zip(["measure"] + heads, widths)))
    print("-|-".join("-" * w for w in widths))
    for r in table:
        print(" | ".join([r[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(r[1:], widths[1:])]))
    gateways = [n for n in clients if n not in FLOORS]
    if "floor-daphne" in clients:
        # Within a round the gateway and the floor ran back to back: the difference is what the
        # gateway's own work adds on the same server stack.
        for key, label in (("cpu_json", "CPU per non-stream request"), ("cpu_stream", "CPU per 50-token stream")):
            diffs = [a[key] - b[key] for a, b in zip(results[gateways[0]], results["floor-daphne"])]
            print(f"gateway's own work, {label} (gateway - bare Daphne, per round, ms): "
                  + ", ".join(f"{d:.3f}" for d in diffs))
        for p in (50, 99):
            diffs = [pct(a["c1"], p) - pct(b["c1"], p) for a, b in zip(results[gateways[0]], results["floor-daphne"])]
            print(f"gateway's own work, non-stream c=1 p{p} (gateway - bare Daphne, per round, ms): "
                  + ", ".join(f"{d:+.2f}" for d in diffs))
    if len(gateways) > 1:
        # Within a round the gateways ran back to back: their ratio is steadier than the ranges.
        base = gateways[0]
        for key, label in (("cpu_json", "non-stream"), ("cpu_stream", "stream"), ("cpu_translated", "translated")):
            for other in gateways[1:]:
                pairs = [(a.get(key), b.get(key)) for a, b in zip(results[base], results[other])]
                ratios = sorted(b / a for a, b in pairs if a and b)
                if ratios:
                    print(f"gateway CPU per {label} request, {other} / {base} per round: "
                          + ", ".join(f"{r:.2f}" for r in ratios) + f" (median {ratios[len(ratios) // 2]:.2f})")


async def cache_hits(args, gateway: tuple[str, int], gw_h: dict, direct: dict) -> None:
    """Response-cache hits (route `cached`, temperature 0) on one gateway process."""
    url, pid = gateway[0] + "/v1/chat/completions", gateway[1]
    zero, tok = {"temperature": 0}, "cached"
    hit = [t for t, _ in await latency(url, gw_h, tok, False, args.requests, zero)]
    before = cpu_seconds(pid)
    hrps, hres, herr = await throughput(url, gw_h, tok, False, 32, args.seconds, zero)
    cpu_hit = (cpu_seconds(pid) - before) / max(1, len(hres)) * 1000
    before = cpu_seconds(pid)
    hsrps, hsres, hserr = await throughput(url, gw_h, tok, True, 32, args.seconds, zero)
    cpu_stream_hit = (cpu_seconds(pid) - before) / max(1, len(hsres)) * 1000
    hslat = [f for _, f in await latency(url, gw_h, tok, True, max(200, args.requests // 4), zero)]
    d, fd = direct["c1"], direct["s32"][2]
    print(f"cache hit, non-stream c=1 p50 latency (ms): {pct(hit, 50):.2f} ({pct(hit, 50) - pct(d, 50):+.2f} vs direct)")
    print(f"cache hit, non-stream c=32: {hrps:.0f} req/s, errors {herr}, CPU {cpu_hit:.2f} ms/req")
    print(f"cache hit, stream 50 tok c=32: {hsrps:.0f} streams/s, errors {hserr}, CPU {cpu_stream_hit:.2f} ms/stream")
    print(f"cache hit, stream c=1 first byte p50 (ms): {pct(hslat, 50):.2f} ({pct(hslat, 50) - pct(fd, 50):+.2f} vs direct)")


async def scaling(args, env: dict, headers: dict, upstream: str) -> None:
    """1 worker vs. N workers of `manage.py serve` (one socket), side by side in one run,
    alternating (1, N, 1, N, ...) so that drift in the machine's load hits both alike.
    No pinning: the workers, the fake upstream and this load generator share every core,
    so on a small machine the ratio understates what N cores give a gateway alone."""
    results: dict[int, list[tuple[float, float, float]]] = {1: [], args.workers: []}
    for _ in range(args.rounds):
        for workers in results:
            port = free_port()
            proc = subprocess.Popen([sys.executable, "manage.py", "serve", "--no-celery", "--host", "127.0.0.1",
                                     "--port", str(port), "--workers", str(workers)], cwd=ROOT, env=env,
                                    stdout=subprocess.DEVNULL)
            try:
                url = f"http://127.0.0.1:{port}"
                await wait_up(url + "/health/live")
                await asyncio.sleep(1)
                rps, res, err = await throughput(url + "/v1/chat/completions", headers, "fake", False,
                                                 args.concurrency, args.seconds)
                lat = [t for t, _ in res]
                results[workers].append((rps, pct(lat, 50), pct(lat, 99)))
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
    print(f"\nworkers (manage.py serve --workers; non-stream, c={args.concurrency}, {args.rounds} rounds "
          f"alternated, {os.cpu_count()} cores shared with the load generator and the fake upstream)")
    print("workers | req/s (median, range) | p50 ms | p99 ms")
    median = {}
    for workers, runs in results.items():
        rates = sorted(r[0] for r in runs)
        median[workers] = rates[len(rates) // 2]
        print(f"{workers:>7} | {median[workers]:>6.0f} ({rates[0]:.0f}-{rates[-1]:.0f}) | "
              f"{sorted(r[1] for r in runs)[len(runs) // 2]:>6.2f} | {sorted(r[2] for r in runs)[len(runs) // 2]:>6.2f}")
    print(f"ratio {args.workers} / 1 workers: {median[args.workers] / median[1]:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests for the c=1 latency")
    parser.add_argument("--translated", action="store_true", help="add the OpenAI→Anthropic translated row")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat, alternating the gateways' order (and the workers comparison's)")
    parser.add_argument("--clients", default="default",
                        help="gateways to measure, one process each: default, builtin, aiohttp "
                             "(comma-separated)")
    parser.add_argument("--workers", type=int, default=0,
                        help="also compare `serve --workers 1` with `--workers N` (throughput, latency, ratio)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections for the workers comparison")
    parser.add_argument("--cache", action="store_true", help="add the response-cache hit rows")
    parser.add_argument("--floor", action="store_true",
                        help="add two pass-through servers without the gateway's work (bare Daphne, bare "
                             "uvloop), measured alike: the floor under the gateway's figures")
    parser.add_argument("--rss", type=int, default=0, metavar="N",
                        help="instead of the figures: the gateway's resident memory over N requests and "
                             "its usage rows (exactly one per request)")
    asyncio.run(main(parser.parse_args()))
