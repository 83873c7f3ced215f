"""`manage.py serve` without starting it: the default number of workers per profile and
the start-up note on what the workers share."""

from __future__ import annotations

import os

import pytest

from django.conf import settings
from django.test import override_settings

from gateway.management.commands.serve import default_workers, listening_socket, sharing_note

POSTGRES = {"default": {**settings.DATABASES["default"], "ENGINE": "django.db.backends.postgresql"}}


def test_embedded_profile_defaults_to_one_worker():
    with override_settings(REDIS_URL=""):
        assert default_workers() == 1


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_scaled_profile_defaults_to_one_worker_per_core():
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        assert default_workers() == (os.cpu_count() or 1)
    with override_settings(REDIS_URL="", DATABASES=POSTGRES):
        assert default_workers() == (os.cpu_count() or 1)


def test_the_start_up_note_says_what_is_not_shared_without_redis():
    with override_settings(REDIS_URL=""):
        note = sharing_note(2)
        shared, per_worker = note.split("Per worker")
        assert per_worker.startswith(": the last prompt of each session")
        for what in ("config version", "circuit breakers", "budgets", "RPM/TPM windows",
                     "stored Responses conversations"):
            assert what in shared and what not in per_worker
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        note = sharing_note(2)
        shared, per_worker = note.split("Per worker")
        assert "circuit breakers" in shared and "RPM/TPM windows" in shared
        assert per_worker.startswith(": the last prompt of each session")
    assert sharing_note(1) == "1 worker."


def test_the_listening_socket_is_inheritable_and_reports_a_free_port():
    sock = listening_socket("127.0.0.1", 0)
    try:
        assert sock.get_inheritable() and sock.getsockname()[1] > 0
    finally:
        sock.close()
