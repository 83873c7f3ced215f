"""The stores that let several `serve` workers on one host share state without Redis:
circuit breakers in a data-dir file (gateway.host_circuits) and stored Responses
conversations in the database (gateway.proxy.conversations, gateway.retention)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from gateway.host_circuits import HostCircuits
from gateway.models import StoredResponse
from gateway.proxy import conversations
from gateway.retention import delete_expired_responses
from routing.stats import CLOSED, OPEN, RuntimeStats
from routing.table import KeyInfo

A, B = ("p-a", "m"), ("p-b", "m")


class TestHostCircuits:
    def test_an_opened_circuit_is_seen_by_another_store_on_the_same_directory(self, tmp_path):
        one, two = HostCircuits(tmp_path), HostCircuits(tmp_path)
        assert one.sync({A: 1_030.0}, now=1_000.0) == {A: 1_030.0}
        assert two.sync({}, now=1_001.0) == {A: 1_030.0}
        assert two.sync({B: 1_060.0}, now=1_002.0) == {A: 1_030.0, B: 1_060.0}
        assert one.sync({A: None}, now=1_003.0) == {B: 1_060.0}  # closed (a probe succeeded)
        assert two.sync({}, now=1_004.0) == {B: 1_060.0}

    def test_expired_entries_are_ignored_and_dropped_at_the_next_write(self, tmp_path):
        store = HostCircuits(tmp_path)
        store.sync({A: 1_010.0, B: 1_100.0}, now=1_000.0)
        assert store.sync({}, now=1_020.0) == {B: 1_100.0}
        store.sync({("p-c", "m"): 1_200.0}, now=1_020.0)
        assert A not in store._read()

    def test_a_missing_or_torn_file_reads_as_no_open_circuit(self, tmp_path):
        store = HostCircuits(tmp_path)
        assert store.sync({}) == {}
        store.path.write_bytes(b"[[\"p\", ")
        assert store.sync({}) == {}
        assert store.sync({A: time.time() + 30})[A] > time.time()

    def test_concurrent_writers_lose_no_transition(self, tmp_path):
        until = time.time() + 300
        with multiprocessing.get_context("fork").Pool(4) as pool:
            pool.starmap(_open_many, [(str(tmp_path), f"w{i}", until) for i in range(4)])
        assert len(HostCircuits(tmp_path).sync({})) == 4 * 25

    def test_two_runtime_stats_share_a_circuit_through_the_file(self, tmp_path):
        here, there = RuntimeStats(), RuntimeStats()
        opened = []
        here.listener = lambda target, state, until: opened.append((target, until))
        for _ in range(5):
            here.end(here.begin(A), False, status=500)
        assert here.state(A) == OPEN
        store_here, store_there = HostCircuits(tmp_path), HostCircuits(tmp_path)
        store_here.sync(dict(opened))
        there.apply_remote(store_there.sync({}))
        assert there.state(A) == OPEN and not there.available(A)
        store_here.sync({A: None})
        there.apply_remote(store_there.sync({}))
        assert there.state(A) == CLOSED


def _open_many(directory: str, worker: str, until: float) -> None:
    store = HostCircuits(directory)
    for i in range(25):
        store.sync({(worker, f"m{i}"): until})


def test_the_cluster_link_runs_on_the_host_file_with_several_workers_and_no_redis(tmp_path):
    from gateway.cluster import Cluster

    async def scenario():
        with override_settings(REDIS_URL="", GATEWAY_WORKERS=2, DATA_DIR=tmp_path,
                               GATEWAY_CLUSTER_SYNC_SECONDS=0.02):
            one, two = Cluster(RuntimeStats()), Cluster(RuntimeStats())
            one.start()
            two.start()
            try:
                for _ in range(5):
                    one.stats.end(one.stats.begin(A), False, status=503)
                await asyncio.sleep(0.2)
                assert two.stats.state(A) == OPEN
            finally:
                await one.stop()
                await two.stop()
        with override_settings(REDIS_URL="", GATEWAY_WORKERS=1):
            lone = Cluster(RuntimeStats())
            lone.start()
            assert lone._task is None  # one process: nothing to share

    asyncio.run(scenario())


@pytest.mark.filterwarnings("ignore")
class TestStoredResponses:
    alice = KeyInfo(id=1, user_id=101, username="alice", prefix="jk-a")
    alice_other_key = KeyInfo(id=2, user_id=101, username="alice", prefix="jk-b")
    bob = KeyInfo(id=3, user_id=202, username="bob", prefix="jk-c")

    def run(self, coroutine):
        with override_settings(REDIS_URL=""):
            return asyncio.run(coroutine)

    def test_saved_in_the_table_and_loaded_by_any_key_of_the_owner_only(self):
        ident = f"resp_unit_{time.time_ns()}"
        response = {"id": ident, "output": [{"type": "message", "content": [{"type": "output_text",
                                                                              "text": "42 \u00e9"}]}]}
        self.run(conversations.save(response, [{"role": "user", "content": "hi"}], self.alice))
        row = StoredResponse.objects.get(id=ident)
        assert (row.user_id, row.key_id) == (101, 1) and row.expires_at > row.created_at
        stored = self.run(conversations.load(ident, self.alice_other_key))
        assert stored == {"input": [{"role": "user", "content": "hi"}], "response": response}
        assert self.run(conversations.load(ident, self.bob)) is None
        assert self.run(conversations.load("resp_unknown", self.alice)) is None

    def test_saving_the_same_id_again_replaces_the_row(self):
        ident = f"resp_unit_{time.time_ns()}"
        self.run(conversations.save({"id": ident, "output": [1]}, [], self.alice))
        self.run(conversations.save({"id": ident, "output": [2]}, [], self.alice))
        assert self.run(conversations.load(ident, self.alice))["response"]["output"] == [2]

    def test_an_expired_row_is_ignored_on_read_and_deleted_by_the_retention_task(self):
        ident = f"resp_unit_{time.time_ns()}"
        self.run(conversations.save({"id": ident}, [], self.alice))
        StoredResponse.objects.filter(id=ident).update(expires_at=timezone.now() - timedelta(seconds=1))
        assert self.run(conversations.load(ident, self.alice)) is None
        live = f"resp_unit_live_{time.time_ns()}"
        self.run(conversations.save({"id": live}, [], self.alice))
        for i in range(5):
            StoredResponse.objects.create(id=f"{ident}-{i}", user_id=101, created_at=timezone.now(),
                                          expires_at=timezone.now() - timedelta(days=1), payload="{}")
        assert delete_expired_responses(batch=2) >= 6  # in batches of 2
        assert not StoredResponse.objects.filter(id__startswith=ident).exists()
        assert StoredResponse.objects.filter(id=live).exists()

    def test_keys_without_a_user_store_nothing(self):
        anonymous = KeyInfo(id=None, user_id=None, username="", prefix="")
        ident = f"resp_unit_{time.time_ns()}"
        self.run(conversations.save({"id": ident}, [], anonymous))
        assert not StoredResponse.objects.filter(id=ident).exists()
        assert self.run(conversations.load(ident, anonymous)) is None
