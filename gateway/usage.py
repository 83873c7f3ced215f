"""Usage recording off the hot path, with nothing lost.

The request handler calls `gw.recorder.record(fields)` exactly once per request (in its
`finally`; the writer starts with the gateway, gateway.state). That appends the record as
one JSON line to this process's write-ahead log (one os.write: the line is in the
kernel, so a SIGKILL of the process cannot lose it) and puts it on an in-memory queue.
Every GATEWAY_USAGE_FLUSH_SECONDS the writer thread cuts the log into a segment file
(fsync'd), inserts the batch and deletes the segment.

- Inserts are `INSERT … ON CONFLICT DO NOTHING` on the unique request_id: a segment
  replayed after a crash between insert and delete never counts twice.
- Values are sanitised for the database (NUL bytes, invalid UTF-8, over-long strings,
  out-of-range integers). A failing batch is split in halves down to single rows; a row
  that still fails goes to the dead-letter file (usage-dead-letter.jsonl, with the reason) and
  never blocks the rest.
- While the database is unreachable the segments stay on disk (the journal) and are
  replayed, oldest first, as soon as it answers again, or at the next start: a new
  process adopts the logs of processes that are gone (their lock file is free).
- The queue is bounded (GATEWAY_USAGE_QUEUE_MAX): beyond it records are only in the
  log, and the writer reads that segment back from disk.
- The writer thread can run at idle CPU priority (GATEWAY_USAGE_WRITER_PRIORITY=idle,
  opt-in): a flush holds the GIL for much of its tens of ms, and at normal priority
  requests arriving during one wait for it (the largest source of the gateway's own p99,
  README, Tail latency). But an idle writer preempted while it holds the GIL leaves the
  serving thread waiting until nothing else wants the core: hundreds of ms when other
  processes keep the cores busy, hence not the default. A core kept busy by the serving
  thread itself would starve it, so `guard()`, on the event loop, gives the writer the
  core back while a record has waited longer than GATEWAY_USAGE_MAX_LAG_SECONDS (not
  while the database is down).
"""

from __future__ import annotations

import asyncio
import atexit
import fcntl
import logging
import operator
import os
import queue
import secrets
import threading
import time
from collections import deque
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal
from pathlib import Path

import orjson
from django.conf import settings

log = logging.getLogger("junction.usage")

WAL_DIR = "usage-wal"
DEAD_LETTER = "usage-dead-letter.jsonl"
TEXT_LIMIT = 10_000  # error_message: a TextField, but nobody needs more in a usage row
INT_MAX = 2_147_483_647  # PositiveIntegerField on PostgreSQL


class Unreachable(Exception):
    """The database did not answer (down, restarting, locked): keep the journal, retry."""


def _clean_str(value: str, limit: int | None) -> str:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates (from JSON "\udc80" escapes)
            value = value.encode("utf-8", "replace").decode("utf-8")
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    return value if limit is None or len(value) <= limit else value[:limit]


def _clean_json(value):
    if isinstance(value, str):
        return _clean_str(value, None)
    if isinstance(value, list):
        return [_clean_json(v) for v in value]
    if isinstance(value, dict):
        return {_clean_str(str(k), None): _clean_json(v) for k, v in value.items()}
    return value


def sanitise(fields: dict) -> dict:
    """What PostgreSQL and SQLite accept for every UsageRecord column. Runs on the writer
    thread for every row, so the common case (nothing to fix) is a few C-level checks."""
    out = None
    for name, (kind, limit) in _column_rules().items():
        value = fields.get(name)
        if value is None:
            continue
        if kind == "str":
            if value.__class__ is str and value.isascii() and "\x00" not in value and len(value) <= limit:
                continue
            value = _clean_str(value if isinstance(value, str) else str(value), limit)
        elif kind == "int":
            if value.__class__ is int and 0 <= value <= limit:
                continue
            value = min(max(int(value), 0), limit)
        else:  # JSON
            try:
                if b"\\u0000" not in orjson.dumps(value):
                    continue
            except (TypeError, orjson.JSONEncodeError):  # lone surrogates
                pass
            value = _clean_json(value)
        if out is None:
            out = dict(fields)
        out[name] = value
    return fields if out is None else out


_RULES: dict | None = None


def _column_rules() -> dict:
    global _RULES
    if _RULES is None:
        from .models import UsageRecord

        rules = {}
        for f in UsageRecord._meta.concrete_fields:
            kind = f.get_internal_type()
            if kind == "CharField":
                rules[f.attname] = ("str", f.max_length)
            elif kind == "TextField":
                rules[f.attname] = ("str", TEXT_LIMIT)
            elif kind == "PositiveIntegerField":
                rules[f.attname] = ("int", INT_MAX)
            elif kind == "PositiveSmallIntegerField":
                rules[f.attname] = ("int", 32_767)
            elif kind == "JSONField":
                rules[f.attname] = ("json", None)
        _RULES = rules
    return _RULES


def _dumps(fields: dict) -> bytes:
    try:
        return orjson.dumps(fields) + b"\n"
    except (TypeError, orjson.JSONEncodeError):  # lone surrogates: orjson refuses them
        return orjson.dumps(sanitise(fields), default=str) + b"\n"


def _loads(line: bytes) -> dict:
    fields = orjson.loads(line)
    fields["created_at"] = datetime.fromisoformat(fields["created_at"])
    return fields


class _Log:
    """This process's write-ahead log: DATA_DIR/usage-wal/<pid>-<token>/, held by an flock
    on its `lock` file for the life of the process (a free lock means its owner is gone)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / f"{os.getpid()}-{secrets.token_hex(4)}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.seq = 0
        self.written = 0  # lines in the active file
        self.fd = self._open_active()

    def _open_active(self) -> int:
        return os.open(self.dir / "active.jsonl", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)

    def next_segment(self) -> Path:
        self.seq += 1
        return self.dir / f"segment-{self.seq:010d}.jsonl"

    def cut(self) -> Path | None:
        """Turn the active file into the next segment (caller holds the recorder's lock)."""
        if not self.written:
            return None
        segment = self.next_segment()
        os.rename(self.dir / "active.jsonl", segment)
        old, self.fd, self.written = self.fd, self._open_active(), 0
        os.fsync(old)  # what the database will not hold yet survives a power loss too
        os.close(old)
        return segment

    def remove(self) -> None:
        """At a clean exit with everything in the database: nothing for a successor to replay."""
        try:
            os.close(self.fd)
            for name in ("active.jsonl", "lock"):
                os.unlink(self.dir / name)
            self.dir.rmdir()
            os.close(self._lock_fd)
        except OSError:
            pass

    def adopt_orphans(self) -> list[Path]:
        """Logs of processes that are gone (their lock is free): moved into ours, oldest first."""
        adopted = []
        for other in sorted(p for p in self.root.iterdir() if p.is_dir() and p != self.dir):
            try:
                fd = os.open(other / "lock", os.O_RDWR)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # alive
                os.close(fd)
                continue
            files = sorted(other.glob("segment-*.jsonl"))
            if (other / "active.jsonl").exists():
                files.append(other / "active.jsonl")
            for path in files:
                target = self.next_segment()
                os.rename(path, target)
                adopted.append(target)
            os.unlink(other / "lock")
            os.close(fd)
            try:
                other.rmdir()
            except OSError:
                pass
        return adopted


class UsageRecorder:
    def __init__(self, interval: float | None = None, data_dir: Path | None = None,
                 max_queue: int | None = None) -> None:
        self.interval = interval if interval is not None else settings.GATEWAY_USAGE_FLUSH_SECONDS
        self.data_dir = Path(data_dir or settings.DATA_DIR)
        self.max_queue = max_queue if max_queue is not None else settings.GATEWAY_USAGE_QUEUE_MAX
        self._queue: queue.SimpleQueue[dict] = queue.SimpleQueue()
        self._queued = 0
        self._overflow = False  # this segment has lines that are not in the queue
        self._log: _Log | None = None
        self._log_lock = threading.Lock()
        self._pending: deque[tuple[Path, list[dict] | None]] = deque()  # segments not in the database yet
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._down_since: float | None = None
        self.listeners: list = []  # callables(fields) for live dashboards; must be cheap
        self.dead_letters = 0
        # Wall-clock start of the last flush after which nothing was pending: every record
        # queued before it is in the database (budget spend reads the database and this
        # process's newer ones).
        self.flushed_before = 0.0
        # Records accepted by record() so far, and how many of the first ones the database
        # holds: budget ledgers (gateway.limits) prune by this count, which is exact where
        # a time cut-off races with the writer thread.
        self.recorded = 0
        self.flushed_count = 0
        self._cut_count = 0
        # Monotonic time of the oldest record not in the database: among those recorded
        # since the last cut, and among those cut and being written (0.0: none).
        self._waiting_since = 0.0
        self._writing_since = 0.0
        self.donated = 0  # times guard() gave the writer the core
        self.idle = settings.GATEWAY_USAGE_WRITER_PRIORITY == "idle"  # opt-in (gateway.settings)

    def record(self, fields: dict) -> None:
        if self._log is None:  # not started (a unit test): memory only until start()
            self.recorded += 1
            self._queue.put(fields)
            self._queued += 1
            for listener in self.listeners:
                listener(fields)
            return
        line = _dumps(fields)
        with self._log_lock:
            if not self._waiting_since:
                self._waiting_since = time.monotonic()
            os.write(self._log.fd, line)
            self._log.written += 1
            self.recorded += 1
            if self._queued < self.max_queue:
                self._queue.put(fields)
                self._queued += 1
            else:
                self._overflow = True
        for listener in self.listeners:
            listener(fields)

    def start(self) -> None:
        """Open the log, adopt what dead processes left and start the writer (also at startup,
        so a journal left behind is replayed without waiting for traffic)."""
        with self._start_lock:
            if self._thread is None:
                self._log = _Log(self.data_dir / WAL_DIR)
                self._pending.extend((path, None) for path in self._log.adopt_orphans())
                self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
                self._thread.start()
                atexit.register(self.close)

    def _run(self) -> None:
        if not self.set_priority(idle=self.idle) and self.idle:
            log.info("usage writer at normal priority (SCHED_IDLE not available)")
        while not self._stop.is_set():
            self._stop.wait(self.interval)
            try:
                self.flush()
            except Exception:  # never let the writer die: the journal keeps everything
                log.exception("usage flush failed")
        self.flush()

    def _cut(self) -> None:
        with self._log_lock:
            segment = self._log.cut() if self._log else None
            self._cut_count = self.recorded
            if not self._writing_since:
                self._writing_since = self._waiting_since
            self._waiting_since = 0.0
            batch = []
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._queued, overflow, self._overflow = 0, self._overflow, False
        if segment is not None:
            self._pending.append((segment, None if overflow else batch))

    def flush(self) -> int:
        """Write everything recorded so far; returns the number of records written.
        While the database is unreachable, returns 0 and keeps the segments."""
        with self._write_lock:
            started = time.time()
            self._cut()
            written = 0
            while self._pending:
                segment, rows = self._pending[0]
                if rows is None:
                    rows = self._read(segment)
                try:
                    written += self._store(rows)
                except Unreachable as exc:
                    # Keep only the file: memory stays bounded however long the outage lasts.
                    self._pending[0] = (segment, None)
                    self._pending = deque((s, None) for s, _ in self._pending)
                    if self._down_since is None:
                        self._down_since = started
                        log.error("database unreachable (%s); journalling usage in %s", exc, self._log.dir)
                    return 0
                os.unlink(segment)
                self._pending.popleft()
            if self._down_since is not None:
                log.warning("database back after %.1fs; journal replayed", started - self._down_since)
                self._down_since = None
            self.flushed_before = started
            self.flushed_count = self._cut_count
            self._writing_since = 0.0
            return written

    def lag(self, now: float | None = None) -> float:
        """Seconds the oldest record not in the database has waited (0.0: none waits)."""
        oldest = min((t for t in (self._writing_since, self._waiting_since) if t), default=0.0)
        return ((time.monotonic() if now is None else now) - oldest) if oldest else 0.0

    def starved(self, max_lag: float) -> bool:
        """The writer lags for want of CPU (not because the database is down)."""
        return self._down_since is None and self._thread is not None and self.lag() > max_lag

    def set_priority(self, idle: bool) -> bool:
        """The writer thread's policy: SCHED_IDLE, or normal at GATEWAY_USAGE_WRITER_NICE
        (Linux; a thread id is a valid target and only that thread changes). False when
        not possible: not Linux, or back from idle without CAP_SYS_NICE."""
        thread = self._thread
        if thread is None or thread.native_id is None:
            return False
        try:
            if idle:
                os.sched_setscheduler(thread.native_id, os.SCHED_IDLE, os.sched_param(0))
            else:
                os.sched_setscheduler(thread.native_id, os.SCHED_OTHER, os.sched_param(0))
                if settings.GATEWAY_USAGE_WRITER_NICE:
                    os.setpriority(os.PRIO_PROCESS, thread.native_id, settings.GATEWAY_USAGE_WRITER_NICE)
            return True
        except (AttributeError, OSError):
            return False

    async def guard(self, max_lag: float | None = None, tick: float = 0.1, give: float = 0.02) -> None:
        """On the event loop, for the gateway's life (started with an idle writer only): an
        idle-priority writer that has lagged more than `max_lag` seconds for want of CPU goes
        back to normal priority until it has caught up (this needs CAP_SYS_NICE, which root
        has); without it, the loop blocks for `give` seconds every `tick` so that the writer
        runs. Requests in flight then wait (the core is overloaded anyway), but usage
        reaches the database within about `max_lag`, for budgets shared across processes
        and for reports."""
        max_lag = settings.GATEWAY_USAGE_MAX_LAG_SECONDS if max_lag is None else max_lag
        raised = False
        while True:
            await asyncio.sleep(tick)
            if self.starved(max_lag):
                if not raised:
                    raised = self.set_priority(idle=False)
                    if raised:
                        log.warning("usage writer %.1fs behind: at normal priority until it catches up",
                                    self.lag())
                if not raised:
                    self.donated += 1
                    time.sleep(give)  # deliberately blocking: the point is to leave the core to the writer
            elif raised and self.lag() <= max_lag / 2:
                raised = not self.set_priority(idle=True)

    def consistent(self, read):
        """`read(flushed_count)` (a database query) while no flush is writing: the count it
        is given is exactly how many of this process's records the database holds."""
        with self._write_lock:
            return read(self.flushed_count)

    def pending_segments(self) -> int:
        return len(self._pending)

    def _read(self, segment: Path) -> list[dict]:
        rows = []
        for line in segment.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                rows.append(_loads(line))
            except Exception as exc:  # a torn last line after a power loss
                self._dead_letter([({"raw": line.decode("utf-8", "replace")}, exc)])
        return rows

    def _store(self, rows: list[dict]) -> int:
        """Batch insert; on a data error the batch is split in halves until the rows that
        fail on their own are found (few transactions for one bad row in a big batch);
        those go to the dead-letter file, with one fsync for the batch."""
        dead: list[tuple[dict, Exception]] = []
        try:
            return self._bisect(rows, dead)
        finally:
            if dead:
                self._dead_letter(dead)

    def _bisect(self, rows: list[dict], dead: list) -> int:
        if not rows:
            return 0
        try:
            self._write(rows)
            return len(rows)
        except Exception as exc:
            if _unreachable(exc):  # rows written before are in: a replay skips them
                raise Unreachable(type(exc).__name__) from exc
            if len(rows) == 1:
                dead.append((rows[0], exc))
                return 0
        half = len(rows) // 2
        return self._bisect(rows[:half], dead) + self._bisect(rows[half:], dead)

    def _dead_letter(self, dead: list[tuple[dict, Exception]]) -> None:
        self.dead_letters += len(dead)
        log.error("%d usage record(s) dead-lettered in %s, first %s: %s", len(dead),
                  self.data_dir / DEAD_LETTER, dead[0][0].get("request_id"), dead[0][1])
        lines = b"".join(orjson.dumps({"at": time.time(), "reason": f"{type(exc).__name__}: {exc}"[:2000],
                                       "record": row}, default=str, option=orjson.OPT_NON_STR_KEYS) + b"\n"
                         for row, exc in dead)
        with open(self.data_dir / DEAD_LETTER, "ab") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())

    @staticmethod
    def _write(batch: list[dict]) -> None:
        """One executemany INSERT … ON CONFLICT DO NOTHING (SQLite and PostgreSQL), rows
        prepared by `_Insert` without Django's per-field machinery: this thread shares the
        GIL with the event loop, and every microsecond per row here is a pause of a request
        (README, Performance). The writer keeps its connection between flushes (reconnecting
        costs more than a flush of a few rows); one that failed is closed and reopened."""
        from django.db import connection, transaction

        insert = _Insert.for_connection(connection)
        rows = [insert.row(sanitise(row)) for row in batch]  # sanitise never mutates `row`
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(insert.sql, rows)
        except Exception as exc:
            if _unreachable(exc):
                connection.close()
            raise

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(30)
        if self._log is not None:
            self.flush()  # what the database does not take stays in the journal for the next start
            if not self._pending:
                self._log.remove()


DATETIME, DECIMAL, JSON = range(1, 4)  # the column kinds _Insert converts


class _Insert:
    """The INSERT statement for UsageRecord and how to turn a record's fields into its
    parameters, built once per database vendor. Only datetimes, decimals and JSON need
    converting, and the same way Django's fields do it: datetimes as they are for PostgreSQL
    and as naive UTC text for SQLite; decimals as Decimal; JSON as text (orjson), cast to
    jsonb on PostgreSQL (JSON `null` for None: the columns are NOT NULL)."""

    _cache: dict[str, _Insert] = {}

    def __init__(self, connection) -> None:
        from .models import UsageRecord

        # Every column, whatever the rows carry: a journal written by an older version lacks
        # newer fields, which take the model's default.
        fields = [f for f in UsageRecord._meta.concrete_fields if not f.primary_key]
        self.names = [f.attname for f in fields]
        self.defaults = {f.attname: f.get_default() for f in fields}
        self.values = operator.itemgetter(*self.names)
        postgres = connection.vendor == "postgresql"
        kinds = {"DateTimeField": DATETIME, "DecimalField": DECIMAL, "JSONField": JSON}
        self.convert = [(i, kinds[f.get_internal_type()]) for i, f in enumerate(fields)
                        if f.get_internal_type() in kinds]
        self.naive_utc_text = not postgres
        placeholders = ", ".join("%s::jsonb" if postgres and f.get_internal_type() == "JSONField" else "%s"
                                 for f in fields)
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        self.sql = (f"INSERT INTO {connection.ops.quote_name(UsageRecord._meta.db_table)} ({columns}) "
                    f"VALUES ({placeholders}) ON CONFLICT DO NOTHING")

    @classmethod
    def for_connection(cls, connection) -> _Insert:
        insert = cls._cache.get(connection.vendor)
        if insert is None:
            insert = cls._cache[connection.vendor] = cls(connection)
        return insert

    def row(self, fields: dict) -> list:
        try:
            values = list(self.values(fields))
        except KeyError:
            values = list(self.values({**self.defaults, **fields}))
        for i, kind in self.convert:
            value = values[i]
            if kind == JSON:
                values[i] = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
            elif value is None:
                continue
            elif kind == DATETIME:
                if self.naive_utc_text:
                    if value.tzinfo is not None:
                        value = value.astimezone(dt_timezone.utc).replace(tzinfo=None)
                    values[i] = str(value)
            elif value.__class__ is not Decimal:
                values[i] = Decimal(repr(value) if value.__class__ is float else str(value))
        return values


def _unreachable(exc: Exception) -> bool:
    from django.db.utils import InterfaceError, OperationalError

    return isinstance(exc, (OperationalError, InterfaceError))

