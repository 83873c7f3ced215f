"""Usage recording off the hot path.

The request handler calls `recorder.record(fields)` exactly once per request (in its
`finally`); that is a lock-free queue put. A writer thread drains the queue every
GATEWAY_USAGE_FLUSH_SECONDS and bulk-inserts. Inserts are keyed by the unique
request_id with ignore_conflicts, so retrying a batch after a failure can never
double-count. On shutdown (atexit) the queue is drained synchronously; a hard
crash (SIGKILL, power loss) loses at most one flush window of records.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time

from django.conf import settings

log = logging.getLogger("junction.usage")


class UsageRecorder:
    def __init__(self, interval: float | None = None) -> None:
        self.interval = interval if interval is not None else settings.GATEWAY_USAGE_FLUSH_SECONDS
        self._queue: queue.SimpleQueue[dict] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self.listeners: list = []  # callables(fields) for live dashboards; must be cheap
        # Wall-clock start of the last flush that succeeded: every record queued before it
        # is in the database (budget spend reads the database and this process's newer ones).
        self.flushed_before = 0.0

    def record(self, fields: dict) -> None:
        self._queue.put(fields)
        if self._thread is None:
            self._start()
        for listener in self.listeners:
            listener(fields)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
                self._thread.start()
                atexit.register(self.close)

    def _drain(self) -> list[dict]:
        batch = []
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                return batch

    def _run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.interval)
            self.flush()
        self.flush()

    def flush(self) -> int:
        """Write everything queued so far; returns the number of records written."""
        with self._write_lock:
            started = time.time()
            batch = self._drain()
            if not batch:
                self.flushed_before = started
                return 0
            delay = 0.1
            while True:
                try:
                    self._write(batch)
                    self.flushed_before = started
                    return len(batch)
                except Exception:  # DB locked or down: keep the batch, never drop it
                    log.exception("usage flush failed; retrying %d records", len(batch))
                    if self._stop.is_set() and delay > 5:
                        log.error("giving up on %d usage records at shutdown", len(batch))
                        return 0
                    time.sleep(delay)
                    delay = min(delay * 2, 10)

    @staticmethod
    def _write(batch: list[dict]) -> None:
        """One executemany INSERT … ON CONFLICT DO NOTHING (SQLite and PostgreSQL):
        the ORM's bulk_create costs several times more CPU per row, and this thread
        shares the GIL with the event loop."""
        from django.db import close_old_connections, connection, transaction

        from .models import UsageRecord

        fields = [UsageRecord._meta.get_field(name) for name in batch[0]]
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        sql = (f"INSERT INTO {connection.ops.quote_name(UsageRecord._meta.db_table)} ({columns}) "
               f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT DO NOTHING")
        # Only fields whose Python value is not already what the driver takes need the
        # field's own preparation (datetimes, decimals, JSON); the rest pass as they are.
        prepared = [(f.attname, f) for f in fields
                    if f.get_internal_type() in ("DateTimeField", "DecimalField", "JSONField")]
        rows = []
        for row in batch:
            values = dict(row)
            for name, field in prepared:
                values[name] = field.get_db_prep_save(values[name], connection)
            rows.append([values[f.attname] for f in fields])
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(sql, rows)
        finally:
            close_old_connections()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(30)
        self.flush()


recorder = UsageRecorder()


def _metrics_listener(fields: dict) -> None:
    from .metrics import observe

    observe(fields)


recorder.listeners.append(_metrics_listener)


def _install_live_view() -> None:
    from .live import install

    install(recorder)


_install_live_view()
