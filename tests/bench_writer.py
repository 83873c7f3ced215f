"""The usage writer's cost to the event loop it shares the GIL with (README, Performance).

    python -m tests.bench_writer [--rows 300] [--flushes 20]

In one process, on a fresh SQLite database in a temporary data dir: a writer thread
inserts batches of `--rows` usage records (UsageRecorder._write, what a flush does) while
an asyncio loop sleeps 1 ms at a time, with the 1 ms GIL switch interval the gateway
uses (gateway/daphne_main.py). Reports the writer's CPU per flush and per row and how
late the loop's timers fire (the pause a request in flight would see). Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone


def record(i: int) -> dict:
    """A finished non-stream request's usage fields, as the proxy records them."""
    return {"request_id": f"bench-{time.time_ns()}-{i}", "created_at": datetime.now(timezone.utc),
            "key_id": None, "user_id": None, "endpoint": "chat.completions", "requested_model": "mock",
            "route": "mock", "rule": "", "candidates": ["p/mock"], "provider": "p", "model": "mock",
            "status": 200, "error_type": "", "error_message": "", "stream": False, "prompt_tokens": 12,
            "completion_tokens": 7, "cached_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0,
            "usage_estimated": False, "cost_usd": 0.000123, "price_source": "admin", "latency_ms": 1.234,
            "ttft_ms": None, "attempts": 1,
            "attempt_chain": [{"provider": "p", "model": "mock", "status": 200, "ms": 1.0}], "session_id": "",
            "client_disconnected": False, "dropped_tools": [], "cache_hit": False, "saved_usd": 0.0}


def main(rows: int, flushes: int) -> None:
    data_dir = tempfile.mkdtemp(prefix="junction-writer-")
    os.environ.update({"DJANGO_SETTINGS_MODULE": "gateway.settings", "GATEWAY_DATA_DIR": data_dir,
                       "DATABASE_URL": f"sqlite:///{data_dir}/bench.sqlite3", "SECRET_KEY": "bench"})
    import django

    django.setup()
    from django.core.management import call_command

    from gateway.usage import UsageRecorder

    call_command("migrate", verbosity=0)
    sys.setswitchinterval(0.001)
    cpu: list[float] = []
    done = threading.Event()

    def writer() -> None:
        for _ in range(flushes):
            batch = [record(i) for i in range(rows)]
            started = time.thread_time()
            UsageRecorder._write(batch)
            cpu.append(time.thread_time() - started)
            time.sleep(0.1)
        done.set()

    async def loop() -> list[float]:
        late = []
        threading.Thread(target=writer, daemon=True).start()
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            late.append((time.perf_counter() - started - 0.001) * 1000)
        return sorted(late)

    late = asyncio.run(loop())
    cpu.sort()
    per_row = sum(cpu) / len(cpu) / rows * 1e6
    flush = cpu[len(cpu) // 2] * 1000
    print(f"{rows} rows a flush, {flushes} flushes: writer CPU per flush p50 {flush:.1f} ms "
          f"({per_row:.0f} us a row); loop timer late by p50 {late[len(late) // 2]:.2f}, "
          f"p99 {late[int(len(late) * 0.99)]:.2f}, max {late[-1]:.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--flushes", type=int, default=20)
    args = parser.parse_args()
    main(args.rows, args.flushes)
