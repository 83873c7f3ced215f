"""The usage recorder without a server: sanitising, row-by-row fallback, dead letters,
the journal while the database is unreachable, replay after a crash, the queue bound."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
from django.db.utils import OperationalError

from gateway.models import UsageRecord
from gateway.usage import DEAD_LETTER, WAL_DIR, UsageRecorder, _Log, sanitise
from tests.e2e import world


def fields(**overrides) -> dict:
    record = {
        "request_id": world.unique("req"), "created_at": datetime.now(timezone.utc), "key_id": None,
        "user_id": None, "endpoint": "chat", "requested_model": "m", "route": "", "rule": "",
        "candidates": [],
        "provider": "p", "model": "m", "status": 200, "error_type": "", "error_message": "", "stream": False,
        "prompt_tokens": 1, "completion_tokens": 2, "cached_tokens": 0, "cache_write_tokens": 0,
        "reasoning_tokens": 0, "usage_estimated": False, "cost_usd": 0.5, "latency_ms": 1.0, "ttft_ms": None,
        "attempts": 1, "attempt_chain": [], "session_id": "", "client_disconnected": False,
    }
    return record | overrides


@pytest.fixture
def make_recorder():
    made = []

    def make(data_dir: Path | None = None, writer: bool = False, **kwargs) -> UsageRecorder:
        data_dir = data_dir or Path(tempfile.mkdtemp(prefix="usage-"))
        r = UsageRecorder(interval=3600, data_dir=data_dir, **kwargs)
        r.listeners = []
        # Flushed by the test only: the log without the writer thread (start() starts both).
        if not writer:
            r._log, r._thread = _Log(r.data_dir / WAL_DIR), threading.Thread()
        made.append(r)
        return r

    yield make
    for r in made:
        r._stop.set()
        if r._thread is not None and r._thread.is_alive():
            r._thread.join(5)


def stored(*ids: str) -> int:
    return UsageRecord.objects.filter(request_id__in=ids).count()


def test_sanitise_makes_any_string_storable():
    clean = sanitise(fields(requested_model="gpt\x00-4o", model="x" * 500, error_message="bad \udc80 byte",
                            candidates=["a\x00b", {"k\x00": "\ud800"}], prompt_tokens=-5,
                            completion_tokens=2**40))
    assert "\x00" not in clean["requested_model"] and len(clean["model"]) == 200
    clean["error_message"].encode("utf-8")  # no lone surrogate left
    assert orjson.dumps(clean["candidates"])  # storable JSON
    assert "\x00" not in orjson.dumps(clean["candidates"]).decode()
    assert clean["prompt_tokens"] == 0 and clean["completion_tokens"] == 2_147_483_647


def test_a_nul_byte_and_a_lone_surrogate_do_not_block_the_batch(make_recorder):
    r = make_recorder()
    rows = [fields(requested_model="gpt\x00x"), fields(error_message="\udc80"), fields()]
    for row in rows:
        r.record(row)
    assert r.flush() == 3
    assert stored(*(row["request_id"] for row in rows)) == 3
    assert r.pending_segments() == 0 and not list((r.data_dir / WAL_DIR).glob("*/segment-*"))


def test_a_row_that_still_fails_goes_to_the_dead_letter_file_and_the_rest_are_written(make_recorder):
    r = make_recorder()
    bad = fields(key_id=987654321)  # no such key: the foreign key fails the batch's transaction
    good = [fields(), fields()]
    for row in [good[0], bad, good[1]]:
        r.record(row)
    assert r.flush() == 2
    assert stored(*(row["request_id"] for row in good)) == 2 and stored(bad["request_id"]) == 0
    letters = [orjson.loads(line) for line in (r.data_dir / DEAD_LETTER).read_bytes().splitlines()]
    assert [d["record"]["request_id"] for d in letters] == [bad["request_id"]]
    assert "IntegrityError" in letters[0]["reason"]
    after = fields()
    r.record(after)
    assert r.flush() == 1 and stored(after["request_id"]) == 1  # nothing left blocking


def test_while_the_database_is_unreachable_records_wait_in_the_journal_and_are_written_once(make_recorder,
                                                                                           monkeypatch):
    r = make_recorder()
    real_write = UsageRecorder._write

    def down(batch):
        raise OperationalError("connection refused")

    monkeypatch.setattr(UsageRecorder, "_write", staticmethod(down))
    rows = [fields() for _ in range(5)]
    for i, row in enumerate(rows):
        r.record(row)
        if i % 2:
            assert r.flush() == 0
    assert r.flush() == 0
    assert r.pending_segments() == 3 and all(rows is None for _, rows in r._pending)  # only on disk
    before = r.flushed_before
    monkeypatch.setattr(UsageRecorder, "_write", staticmethod(real_write))
    assert r.flush() == 5
    assert stored(*(row["request_id"] for row in rows)) == 5
    assert r.pending_segments() == 0 and r.flushed_before > before


def test_a_crashed_process_log_is_replayed_by_the_next_one_exactly_once(make_recorder):
    data_dir = Path(tempfile.mkdtemp(prefix="usage-"))
    crashed = make_recorder(data_dir)
    rows = [fields() for _ in range(4)]
    for row in rows[:2]:
        crashed.record(row)
    crashed.flush()  # these two are in the database and their segment is gone...
    for row in rows[2:]:
        crashed.record(row)
    crashed._cut()  # ...these two are cut into a segment, and the process dies before inserting
    crashed.record(rows[0])  # a line in the active file that is already in the database
    os.close(crashed._log._lock_fd)  # the process is gone: its lock is free
    assert stored(*(row["request_id"] for row in rows)) == 2

    successor = make_recorder(data_dir, writer=True)
    successor.start()
    successor._stop.set()
    successor._thread.join(5)
    assert stored(*(row["request_id"] for row in rows)) == 4
    assert UsageRecord.objects.filter(request_id=rows[0]["request_id"]).count() == 1
    assert [p.name for p in (data_dir / WAL_DIR).iterdir()] == [successor._log.dir.name]


def test_a_live_process_log_is_not_adopted(make_recorder):
    data_dir = Path(tempfile.mkdtemp(prefix="usage-"))
    alive = make_recorder(data_dir)
    alive.record(fields())
    other = make_recorder(data_dir, writer=True)
    other.start()
    assert other.pending_segments() == 0 and (alive._log.dir / "active.jsonl").exists()


def test_beyond_the_queue_bound_records_are_read_back_from_the_journal(make_recorder):
    r = make_recorder(max_queue=2)
    rows = [fields() for _ in range(7)]
    for row in rows:
        r.record(row)
    assert r._queue.qsize() == 2
    assert r.flush() == 7
    assert stored(*(row["request_id"] for row in rows)) == 7


def test_a_clean_exit_leaves_no_log_behind(make_recorder):
    r = make_recorder()
    row = fields()
    r.record(row)
    r.close()
    assert stored(row["request_id"]) == 1 and list((r.data_dir / WAL_DIR).iterdir()) == []


def test_budget_spend_counts_every_record_once_whatever_the_flush_timing(make_recorder):
    """Budget spend = database totals + this process's records the database did not hold
    when they were read. Records settled while a flush was under way (here: stamped after
    its start) were once counted twice, in the database and in the ledger, until the next
    refresh; the ledger now prunes by the recorder's count, read in step with the query."""
    import dataclasses

    from gateway.limits import Limits, _database_spend, build_budgets
    from gateway.services import key_issue
    from routing.table import EMPTY, KeyInfo

    row, _ = key_issue(username=world.unique("ledger"), budget_usd=100, budget_period="daily")
    key = KeyInfo(id=row.id, user_id=row.user_id, username=row.user.username, prefix=row.prefix)
    r = make_recorder()
    limits = Limits(r)
    budgets = r.consistent(lambda n: build_budgets(cutoff=n))
    snapshot = dataclasses.replace(EMPTY, version="v1", budgets=budgets)
    budget = limits.budgets_for(snapshot, key)[0]

    def request(cost: float, late: bool = False) -> None:
        when = time.time() + (5 if late else 0)  # late: settled after a flush started
        limits.settle(snapshot, key, cost=cost, tokens=0, now=when)
        r.record(fields(key_id=row.id, user_id=row.user_id, cost_usd=cost))

    request(0.5)
    request(0.25, late=True)
    assert r.flush() == 2
    request(0.125)  # not flushed yet: only in the ledger
    limits._reseed(*reversed(r.consistent(_database_spend)))
    assert limits.spent(budget, time.time()) == 0.875
    r.flush()
    limits._reseed(*reversed(r.consistent(_database_spend)))
    assert limits.spent(budget, time.time()) == 0.875


def test_rows_prepared_without_the_orm_read_back_as_the_orm_would_have_stored_them():
    """_write prepares parameters itself (no Django field machinery): what the ORM reads back
    equals what bulk_create would have stored: aware datetimes, decimals, JSON with non-ASCII
    text and non-string keys, None, and the model's defaults for fields a record lacks."""
    from decimal import Decimal

    from django.utils import timezone as dj_timezone

    at = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=timezone.utc)
    full = fields(created_at=at, cost_usd=0.00012345, saved_usd=1.5, ttft_ms=12.5,
                  candidates=["p/m", "é/模型"], attempt_chain=[{"provider": "p", "status": 200, "ms": 1.25}],
                  dropped_tools=[{1: "x"}], cache_hit=True, price_source="admin")
    old = fields(created_at=at.astimezone(dj_timezone.get_fixed_timezone(120)))  # another offset
    for name in ("dropped_tools", "cache_hit", "saved_usd", "price_source"):
        old.pop(name, None)  # a journal line from before these columns
    UsageRecorder._write([full, old])
    a = UsageRecord.objects.get(request_id=full["request_id"])
    assert a.created_at == at and a.cost_usd == Decimal("0.00012345") and a.saved_usd == Decimal("1.5")
    assert a.ttft_ms == 12.5 and a.candidates == ["p/m", "é/模型"] and a.cache_hit is True
    assert a.attempt_chain == [{"provider": "p", "status": 200, "ms": 1.25}]
    assert a.dropped_tools == [{"1": "x"}] and a.price_source == "admin"
    b = UsageRecord.objects.get(request_id=old["request_id"])
    assert b.created_at == at and b.dropped_tools == [] and b.cache_hit is False and b.saved_usd == 0
    assert b.ttft_ms is None
    # Filtering on the datetime column works on the stored text (same format as Django's).
    assert UsageRecord.objects.filter(request_id=full["request_id"], created_at__gte=at,
                                      created_at__lt=at.replace(microsecond=891012)).exists()
    UsageRecorder._write([full])  # a replay: ON CONFLICT DO NOTHING
    assert stored(full["request_id"]) == 1


@pytest.fixture
def idle_priority():
    """GATEWAY_USAGE_WRITER_PRIORITY=idle (opt-in) for the whole test: a recorder reads
    it when it is made."""
    from django.test import override_settings

    with override_settings(GATEWAY_USAGE_WRITER_PRIORITY="idle"):
        yield


def test_the_default_writer_runs_at_normal_priority(make_recorder):
    r = make_recorder(writer=True)
    r.start()
    time.sleep(0.05)
    assert os.sched_getscheduler(r._thread.native_id) == os.SCHED_OTHER
    r.close()


def test_the_writer_thread_runs_at_idle_priority_and_only_that_thread(make_recorder, idle_priority):
    """GATEWAY_USAGE_WRITER_PRIORITY=idle: a waking request preempts a flush."""
    r = make_recorder(writer=True)
    r.start()
    deadline = time.time() + 5
    while time.time() < deadline and os.sched_getscheduler(r._thread.native_id) != os.SCHED_IDLE:
        time.sleep(0.01)
    assert os.sched_getscheduler(r._thread.native_id) == os.SCHED_IDLE
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    r.close()


def test_the_writer_threads_nice_value_changes_only_that_thread(make_recorder):
    """GATEWAY_USAGE_WRITER_PRIORITY=normal with GATEWAY_USAGE_WRITER_NICE: the kernel
    prefers the serving thread over the writer."""
    from django.test import override_settings

    base = os.getpriority(os.PRIO_PROCESS, 0)
    with override_settings(GATEWAY_USAGE_WRITER_PRIORITY="normal", GATEWAY_USAGE_WRITER_NICE=5):
        r = make_recorder(writer=True)
        r.start()
        deadline = time.time() + 5
        while time.time() < deadline and os.getpriority(os.PRIO_PROCESS, r._thread.native_id) != 5:
            time.sleep(0.01)
        # An absolute value; lowering it below the process's own needs privileges.
        expected = 5 if base <= 5 or os.geteuid() == 0 else base
        assert os.getpriority(os.PRIO_PROCESS, r._thread.native_id) == expected
    assert os.getpriority(os.PRIO_PROCESS, 0) == base
    r.close()


def test_lag_is_how_long_the_oldest_record_not_in_the_database_has_waited(make_recorder):
    r = make_recorder()
    assert r.lag() == 0.0
    r.record(fields())
    time.sleep(0.05)
    assert r.lag() >= 0.05
    r._cut()  # cut, not yet written (a flush under way): still waiting
    r.record(fields())
    assert r.lag() >= 0.05
    assert r.flush() == 2 and r.lag() == 0.0


def test_a_writer_kept_from_the_database_is_not_starved(make_recorder, monkeypatch):
    """While the database is down the writer is not short of CPU: the guard leaves it be."""
    r = make_recorder()

    def down(batch):
        raise OperationalError("connection refused")

    monkeypatch.setattr(UsageRecorder, "_write", staticmethod(down))
    r.record(fields())
    assert r.flush() == 0
    time.sleep(0.06)
    assert r.lag() > 0.05 and not r.starved(0.05)


def _policy(r: UsageRecorder) -> int:
    return os.sched_getscheduler(r._thread.native_id)


def _started_idle(make_recorder) -> UsageRecorder:
    r = make_recorder(writer=True)  # the flush window is an hour: this writer never catches up alone
    r.start()
    deadline = time.time() + 5
    while time.time() < deadline and _policy(r) != os.SCHED_IDLE:
        time.sleep(0.01)
    assert _policy(r) == os.SCHED_IDLE
    return r


@pytest.mark.skipif(os.geteuid() != 0, reason="raising a thread from SCHED_IDLE needs CAP_SYS_NICE")
def test_a_starved_idle_writer_runs_at_normal_priority_until_it_has_caught_up(make_recorder, idle_priority):
    import asyncio

    r = _started_idle(make_recorder)

    async def scenario() -> None:
        guard = asyncio.ensure_future(r.guard(max_lag=0.05, tick=0.01))
        r.record(fields())
        await asyncio.sleep(0.2)
        assert _policy(r) == os.SCHED_OTHER and r.donated == 0
        await asyncio.to_thread(r.flush)  # caught up
        await asyncio.sleep(0.1)
        assert _policy(r) == os.SCHED_IDLE
        guard.cancel()

    asyncio.run(scenario())
    r.close()


def test_without_the_right_to_raise_it_the_loop_leaves_a_starved_writer_the_core(make_recorder, monkeypatch,
                                                                                 idle_priority):
    """Unprivileged (no CAP_SYS_NICE): the event loop blocks for `give` seconds every tick
    while the writer is starved, and stops as soon as it has caught up."""
    import asyncio

    r = _started_idle(make_recorder)
    monkeypatch.setattr(r, "set_priority", lambda idle: False)

    async def scenario() -> None:
        guard = asyncio.ensure_future(r.guard(max_lag=0.05, tick=0.01, give=0.03))
        r.record(fields())
        late = 0.0
        for _ in range(30):
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            late = max(late, time.perf_counter() - started - 0.005)
        assert r.donated > 0 and late >= 0.025  # the loop stood still for the writer
        await asyncio.to_thread(r.flush)
        donated = r.donated
        await asyncio.sleep(0.1)
        assert r.donated == donated
        guard.cancel()

    asyncio.run(scenario())
    r.close()
