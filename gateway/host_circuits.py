"""Circuit breakers shared by the workers of one `serve` on one host, without Redis.

A small JSON file in the data dir (`cluster/circuits.json`): the circuits some worker
holds open, each with the wall-clock end of its cool-down. gateway.cluster's background
task calls `sync()` every GATEWAY_CLUSTER_SYNC_SECONDS with the transitions this process
saw since the last call, and applies what it returns (routing.stats.apply_remote), the
same contract as the Redis hash. Never called from the request path.

Writers take an flock on a lock file, read, merge, drop expired entries and replace
the file atomically (write + rename), so readers need no lock and never see half a
file. The file holds the open circuits only (a few entries): every sync reads it whole,
a few microseconds (an mtime check could miss two writes within one clock tick).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import orjson

Target = tuple[str, str]


class HostCircuits:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "circuits.json"
        self._lock_path = self.dir / "circuits.lock"

    def sync(self, outbox: dict[Target, float | None], now: float | None = None) -> dict[Target, float]:
        """Publish this process's transitions (target → open until, or None: closed) and
        return every circuit held open on this host (target → wall-clock end of cool-down)."""
        now = time.time() if now is None else now
        if outbox:
            fd = os.open(self._lock_path, os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                circuits = self._read()
                for target, until in outbox.items():
                    if until is None:
                        circuits.pop(target, None)
                    else:
                        circuits[target] = until
                circuits = {t: u for t, u in circuits.items() if u > now}
                self._write(circuits)
            finally:
                os.close(fd)  # releases the lock
            return circuits
        return {t: u for t, u in self._read().items() if u > now}

    def _read(self) -> dict[Target, float]:
        try:
            entries = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError):  # none yet (or unreadable: rewritten at the next change)
            return {}
        return {(p, m): float(u) for p, m, u in entries}

    def _write(self, circuits: dict[Target, float]) -> None:
        tmp = self.path.with_name(f"circuits.{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps([[p, m, u] for (p, m), u in circuits.items()]))
        os.replace(tmp, self.path)
