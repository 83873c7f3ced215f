"""RPM/TPM windows shared by the worker processes of one host without Redis
(`serve --workers N`, no REDIS_URL): a fixed-size table in a memory-mapped file in
the data dir, read and written under an exclusive flock (gateway.limits uses it).

Why a mapped file: one admission is one flock/unlock pair plus a few struct reads and
writes in memory, tens of microseconds at most (tests/unit/test_host_windows.py prints
it); the same admission as a SQLite transaction (WAL, synchronous=OFF, one row per owner
and second) measured 166-279 µs against 22 µs here, side by side on the loaded test
machine. The lock is the kernel's, so a worker killed while holding it releases it; the
counts survive a worker's restart.

Layout: SLOTS slots of one window owner each (a key or a user), found by open
addressing on the owner's id. A slot holds the owner's id, the second its window was
last moved to, the totals of the window, and 60 one-second buckets (requests, tokens):
the window is the last 60 seconds, to the second. Moving a window to a later second
subtracts and clears the buckets that left it, so reading the totals costs nothing
per bucket. A slot idle for 60 s is empty in effect and is reused for another owner;
slots never become free again, so probe chains stay intact. If no slot is found within
PROBES (more owners active in one minute than the table holds near that hash), the
request is not limited here and a warning is logged.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import struct
from pathlib import Path

log = logging.getLogger("junction.limits")

SLOTS = 8192  # 7.6 MiB, sparse until used
BUCKETS = 60
PROBES = 64
# owner id, second the window was moved to, requests and tokens in it, the oldest second
# in it with requests and with tokens (for the resets; 0: none)
HEADER = struct.Struct("<qqqqqq")
BUCKET = struct.Struct("<qq")  # requests, tokens of one second
IDENT = struct.Struct("<q")
BUCKETS_ALL = struct.Struct("<" + "qq" * BUCKETS)
SLOT_SIZE = HEADER.size + BUCKETS * BUCKET.size
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
        self._offsets: dict[int, int] = {}  # owner id → its slot, as last found (checked on use)

    def _mapped(self) -> mmap.mmap:
        if self._map is None or self._pid != os.getpid():  # opened after a fork: not the parent's lock
            size = SLOTS * SLOT_SIZE
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)  # every worker may do it: same size, zeros only where new
            self._map, self._fd, self._pid = mmap.mmap(fd, size), fd, os.getpid()
            self._offsets = {}
        return self._map

    def _slot(self, data: mmap.mmap, ident: int, second: int) -> int | None:
        """Offset of the owner's slot (taken over if it is new), None if the table is full there."""
        offset = self._offsets.get(ident)
        if offset is not None and IDENT.unpack_from(data, offset)[0] == ident:
            return offset  # still the owner's: another process may have reused it after 60 s idle
        start = (ident * 0x9E3779B97F4A7C15 >> 16) % SLOTS
        stale = None
        for probe in range(PROBES):
            offset = ((start + probe) % SLOTS) * SLOT_SIZE
            found, last, *_ = HEADER.unpack_from(data, offset)
            if found == ident:
                self._offsets[ident] = offset
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
        data[offset:offset + SLOT_SIZE] = bytes(SLOT_SIZE)
        HEADER.pack_into(data, offset, ident, second, 0, 0, 0, 0)
        self._offsets[ident] = offset
        return offset

    @staticmethod
    def _move(data: mmap.mmap, offset: int, second: int) -> tuple[int, ...]:
        """Move the window to end at `second`: what left it is subtracted and cleared.
        Returns the slot's header after the move."""
        header = HEADER.unpack_from(data, offset)
        ident, last, requests, tokens, oldest_request, oldest_token = header
        if second <= last:  # another worker moved it already (or this clock read is older)
            return header
        if second - last >= BUCKETS:
            data[offset + HEADER.size:offset + SLOT_SIZE] = bytes(BUCKETS * BUCKET.size)
            header = (ident, second, 0, 0, 0, 0)
        else:
            for passed in range(last + 1, second + 1):  # bucket of second x held x - 60
                at = offset + HEADER.size + (passed % BUCKETS) * BUCKET.size
                old_requests, old_tokens = BUCKET.unpack_from(data, at)
                if old_requests or old_tokens:
                    requests -= old_requests
                    tokens -= old_tokens
                    BUCKET.pack_into(data, at, 0, 0)
            floor = second - BUCKETS + 1
            if 0 < oldest_request < floor or 0 < oldest_token < floor:  # left the window: find the next ones
                oldest_request, oldest_token = HostWindows._oldest(data, offset, second, requests, tokens)
            header = (ident, second, requests, tokens, oldest_request, oldest_token)
        HEADER.pack_into(data, offset, *header)
        return header

    @staticmethod
    def _oldest(data: mmap.mmap, offset: int, last: int, requests: int, tokens: int) -> tuple[int, int]:
        """The oldest second of the window with requests and with tokens (0: none). A scan of
        the buckets, at most once a second per window: one read, rotated to start at the
        window's oldest second (last - 59, whose bucket is that of last + 1)."""
        values = BUCKETS_ALL.unpack_from(data, offset + HEADER.size)
        start = 2 * ((last + 1) % BUCKETS)
        ordered = values[start:] + values[:start]
        found = []
        for field, total in ((0, requests), (1, tokens)):
            if total <= 0:
                found.append(0)
            else:
                found.append(last - BUCKETS + 1 + list(map(bool, ordered[field::2])).index(True))
        return found[0], found[1]

    @staticmethod
    def _counts(data: mmap.mmap, offset: int | None, now: float, second: int) -> WindowCounts:
        if offset is None:
            return WindowCounts(0, 0, 60.0, 60.0)
        _, _, requests, tokens, oldest_request, oldest_token = HostWindows._move(data, offset, second)
        return WindowCounts(requests, tokens,
                            min(max(oldest_request + BUCKETS - now, 0.0), 60.0) if oldest_request else 60.0,
                            min(max(oldest_token + BUCKETS - now, 0.0), 60.0) if oldest_token else 60.0)

    @staticmethod
    def _book(data: mmap.mmap, offset: int, second: int, requests: int, tokens: int) -> None:
        """Count in the bucket of `second` (moved to already) and in the window's totals."""
        header = HEADER.unpack_from(data, offset)
        ident, last, total_requests, total_tokens, oldest_request, oldest_token = header
        if second <= last - BUCKETS:
            return  # older than the window (a clock read long before the lock)
        at = offset + HEADER.size + (second % BUCKETS) * BUCKET.size
        old_requests, old_tokens = BUCKET.unpack_from(data, at)
        BUCKET.pack_into(data, at, old_requests + requests, old_tokens + tokens)
        if requests and (not oldest_request or second < oldest_request):
            oldest_request = second
        if tokens and (not oldest_token or second < oldest_token):
            oldest_token = second
        HEADER.pack_into(data, offset, ident, last, total_requests + requests, total_tokens + tokens,
                         oldest_request, oldest_token)

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
            counts = [self._counts(data, offset, now, second) for offset in offsets]
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
                    self._move(data, offset, second)
                    self._book(data, offset, second, 0, tokens)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
