"""RPM/TPM windows shared by the worker processes of one host without Redis
(`serve --workers N`, no REDIS_URL): a fixed-size table in a memory-mapped file in
the data dir, read and written under an exclusive flock (gateway.limits uses it).

Why a mapped file: one admission is one flock/unlock pair plus a few struct reads and
writes in memory, a few microseconds (measured in tests/unit/test_host_windows.py),
where a SQLite transaction costs tens to hundreds. The lock is the kernel's, so a
worker killed while holding it releases it; the counts survive a worker's restart.

Layout: SLOTS slots of one window owner each (a key or a user), found by open
addressing on the owner's id. A slot holds the owner's id, the last second it was
written, and 60 one-second buckets (second, requests, tokens): the window is the
last 60 seconds, to the second. A slot untouched for 60 s is empty in effect and is
reused for another owner; slots never become free again, so probe chains stay intact.
If no slot is found within PROBES (more owners active in one minute than the table
holds near that hash), the request is not limited here and a warning is logged.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import struct
from pathlib import Path

log = logging.getLogger("junction.limits")

SLOTS = 8192  # 8 MiB, sparse until used
BUCKETS = 60
PROBES = 64
HEADER = struct.Struct("<qq")  # owner id, last second written
LAST = struct.Struct("<q")
BUCKET = struct.Struct("<IIQ")  # second, requests, tokens
SLOT = struct.Struct("<qq" + "IIQ" * BUCKETS)
FILE_NAME = "rate-windows.v1"  # a new layout gets a new name


def owner_id(scope: str, owner: int) -> int:
    """Never 0 (0 marks a slot never used): keys and users have ids from 1."""
    return owner * 2 + (scope == "user")


class WindowCounts:
    __slots__ = ("requests", "tokens", "requests_reset", "tokens_reset")

    def __init__(self, requests: int, tokens: int, requests_reset: float, tokens_reset: float) -> None:
        self.requests, self.tokens = requests, tokens
        self.requests_reset, self.tokens_reset = requests_reset, tokens_reset


class HostWindows:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._map: mmap.mmap | None = None
        self._fd = -1
        self._pid = 0
        self._warned = False

    def _mapped(self) -> mmap.mmap:
        if self._map is None or self._pid != os.getpid():  # opened after a fork: not the parent's lock
            size = SLOTS * SLOT.size
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)  # every worker may do it: same size, zeros only where new
            self._map, self._fd, self._pid = mmap.mmap(fd, size), fd, os.getpid()
        return self._map

    def _slot(self, data: mmap.mmap, ident: int, second: int) -> int | None:
        """Offset of the owner's slot (taken over if it is new), None if the table is full there."""
        start = (ident * 0x9E3779B97F4A7C15 >> 16) % SLOTS
        stale = None
        for probe in range(PROBES):
            offset = ((start + probe) % SLOTS) * SLOT.size
            found, last = HEADER.unpack_from(data, offset)
            if found == ident:
                return offset
            if found == 0:
                break
            if stale is None and last <= second - BUCKETS:
                stale = offset
        else:
            if stale is None:
                if not self._warned:
                    self._warned = True
                    log.warning("the host's rate-limit table is full: some requests are not limited")
                return None
        offset = stale if stale is not None else offset
        data[offset:offset + SLOT.size] = bytes(SLOT.size)
        HEADER.pack_into(data, offset, ident, second)
        return offset

    @staticmethod
    def _counts(data: mmap.mmap, offset: int, now: float, second: int) -> WindowCounts:
        values = SLOT.unpack_from(data, offset)
        requests = tokens = 0
        first_request = first_token = second + 1
        floor = second - BUCKETS + 1
        for i in range(2, 2 + 3 * BUCKETS, 3):
            at = values[i]
            if at >= floor:
                if values[i + 1]:
                    requests += values[i + 1]
                    first_request = min(first_request, at)
                if values[i + 2]:
                    tokens += values[i + 2]
                    first_token = min(first_token, at)
        return WindowCounts(requests, tokens, min(first_request + BUCKETS - now, 60.0),
                            min(first_token + BUCKETS - now, 60.0))

    @staticmethod
    def _book(data: mmap.mmap, offset: int, second: int, requests: int, tokens: int) -> None:
        at = offset + HEADER.size + (second % BUCKETS) * BUCKET.size
        stamp, old_requests, old_tokens = BUCKET.unpack_from(data, at)
        if stamp != second:
            old_requests = old_tokens = 0
        BUCKET.pack_into(data, at, second, old_requests + requests, old_tokens + tokens)
        LAST.pack_into(data, offset + 8, second)

    def admit(self, windows: list[tuple[int, int, int]], now: float) -> tuple[int, list[WindowCounts]]:
        """`windows`: (owner id, rpm limit, tpm limit), 0 = no limit. Atomically for all of
        them: if none is at a limit, count this request in each. Returns the index of the
        refusing limit (2·i for window i's requests, 2·i + 1 for its tokens; -1: admitted)
        and each window's counts (requests including this one when admitted)."""
        data = self._mapped()
        second = int(now)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            offsets = [self._slot(data, ident, second) for ident, _, _ in windows]
            counts = [self._counts(data, o, now, second) if o is not None else WindowCounts(0, 0, 60.0, 60.0)
                      for o in offsets]
            refused = -1
            for i, (_, rpm, tpm) in enumerate(windows):
                if rpm and counts[i].requests >= rpm:
                    refused = 2 * i
                elif tpm and counts[i].tokens >= tpm:
                    refused = 2 * i + 1
                else:
                    continue
                break
            if refused < 0:
                for (_, rpm, _), offset, c in zip(windows, offsets, counts):
                    if rpm and offset is not None:
                        self._book(data, offset, second, 1, 0)
                        c.requests += 1
            return refused, counts
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def add_tokens(self, idents: list[int], tokens: int, now: float) -> None:
        """Book a finished request's tokens in its owners' windows."""
        data = self._mapped()
        second = int(now)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            for ident in idents:
                offset = self._slot(data, ident, second)
                if offset is not None:
                    self._book(data, offset, second, 0, tokens)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
