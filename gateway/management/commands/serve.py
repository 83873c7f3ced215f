"""Run the gateway: N Daphne worker processes on one listening socket, plus a Celery
worker with the one beat, all supervised. SIGTERM / Ctrl-C drains and stops them all.

The listening sockets are bound here and inherited by the workers (Daphne's `--fd`).
With SO_REUSEPORT (Linux) each worker slot has its own socket on the one port and the
kernel spreads new connections over them; one socket shared by all would not: the
first worker to wake accepts every connection waiting (Twisted accepts up to 100 per
wake-up), so a burst of keep-alive connections all landed on one worker. A restarted
worker takes over its slot's socket, whose queued connections wait for it. A worker
that exits unexpectedly is restarted after a backoff that doubles while it keeps failing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

BACKOFF_MAX = 30.0  # seconds between restarts of a worker that keeps crashing
STABLE_AFTER = 30.0  # a worker up this long is healthy again: its backoff resets


def scaled_profile() -> bool:
    return bool(settings.REDIS_URL) or settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3"


def default_workers() -> int:
    """Every core for the scaled profile (Postgres/Redis); one for the embedded one (SQLite)."""
    return (os.cpu_count() or 1) if scaled_profile() else 1


# Worker-local on purpose: hints that only cost a cache miss when another worker serves the turn.
PER_WORKER = ("Per worker: the last prompt of each session (where prompt-cache breakpoints go) and the "
              "response cache's in-process tier (at most GATEWAY_RESPONSE_CACHE_LOCAL_TTL s stale).")


def sharing_note(workers: int) -> str:
    """What N workers on this host share, and what they do not (README, Deployment)."""
    if workers == 1:
        return "1 worker."
    if settings.REDIS_URL:
        return (f"{workers} workers. Shared through Redis and the database: config version, circuit breakers, "
                f"budgets (spend re-read from the database), RPM/TPM windows, stored Responses conversations "
                f"(Redis). {PER_WORKER}")
    return (f"{workers} workers without REDIS_URL. Shared: config version, circuit breakers and RPM/TPM "
            f"windows (data dir; circuits synced every {settings.GATEWAY_CLUSTER_SYNC_SECONDS:g} s), usage, "
            f"budgets and stored Responses conversations (database; spend re-read every "
            f"{settings.GATEWAY_BUDGET_REFRESH_SECONDS:g} s). {PER_WORKER}")


def listening_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CommandError(f"cannot listen on {host}:{port}: {exc}") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


class Child:
    """One supervised process: restarted with a doubling backoff when it exits on its own."""

    def __init__(self, name: str, command: list[str], pass_fds: tuple[int, ...] = ()) -> None:
        self.name, self.command, self.pass_fds = name, command, pass_fds
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.backoff = 0.0
        self.restart_at = 0.0

    def spawn(self) -> None:
        # Own process group: Ctrl-C reaches the supervisor only, which forwards one SIGTERM
        # (a second signal to a worker would end its drain at once).
        self.proc = subprocess.Popen(self.command, env=os.environ.copy(), pass_fds=self.pass_fds,
                                     process_group=0)
        self.started = time.monotonic()

    def check(self, log) -> None:
        now = time.monotonic()
        if self.proc is None:
            if now >= self.restart_at:
                self.spawn()
            return
        code = self.proc.poll()
        if code is None:
            if self.backoff and now - self.started > STABLE_AFTER:
                self.backoff = 0.0
            return
        self.backoff = min(BACKOFF_MAX, self.backoff * 2 or 1.0)
        log(f"{self.name} (pid {self.proc.pid}) exited with {code}; restarting in {self.backoff:g} s")
        self.proc = None
        self.restart_at = now + self.backoff

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)


class Command(BaseCommand):
    help = "Serve the gateway: N Daphne workers on one socket, a Celery worker and the beat."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.GATEWAY_HOST)
        parser.add_argument("--port", type=int, default=settings.GATEWAY_PORT)
        parser.add_argument("--workers", type=int, default=None,
                            help="Daphne worker processes (default: the number of cores with DATABASE_URL "
                                 "or REDIS_URL, 1 on the embedded SQLite profile).")
        parser.add_argument("--no-celery", action="store_true", help="Do not start the Celery worker.")
        parser.add_argument("--log-format", choices=("text", "json", "none"), default=None,
                            help="Access log on stderr, one line per request (gateway.access_log); "
                                 "default GATEWAY_LOG_FORMAT (none).")
        parser.add_argument("--access-log", default=None, help="Write Daphne's access log to this file.")

    def handle(self, *args, host, port, workers, no_celery, log_format, access_log, **options):
        workers = workers or default_workers()
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        reuse_port = workers > 1 and hasattr(socket, "SO_REUSEPORT")
        sockets = [listening_socket(host, port, reuse_port)]
        port = sockets[0].getsockname()[1]  # --port 0: a free port
        while reuse_port and len(sockets) < workers:
            sockets.append(listening_socket(host, port, reuse_port))
        if log_format:
            os.environ["GATEWAY_LOG_FORMAT"] = log_format  # inherited by the workers
        # Several, no Redis: they share RPM/TPM windows and circuits through the data dir.
        os.environ["GATEWAY_WORKERS"] = str(workers)
        children = []
        for i in range(workers):
            fd = sockets[i % len(sockets)].fileno()
            daphne = [sys.executable, "-m", "gateway.daphne_main", "--fd", str(fd), "--verbosity", "0",
                      "--proxy-headers"]
            if access_log:
                daphne += ["--access-log", access_log]
            daphne.append("gateway.asgi:application")
            children.append(Child(f"worker {i + 1}", daphne, (fd,)))
        if not no_celery:
            # `--beat` in this one Celery process: exactly one beat per host.
            # `--quiet`: no start-up banner in the console (`make run` shows one line per request).
            children.append(Child("celery", [sys.executable, "-m", "celery", "--quiet", "-A", "gateway", "worker",
                                             "--beat",
                                             "--loglevel", "WARNING", "--concurrency", "1", "--pool", "solo"]))
        signals = 0

        def stop(*_):
            nonlocal signals
            signals += 1
            for child in children:  # the first drains, a second one ends the grace period
                child.signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(f"Junction listening on http://{host}:{port}  (admin: http://{host}:{port}/admin/)")
        self.stdout.write(sharing_note(workers))
        self.stdout.flush()
        try:
            while not signals:
                for child in children:
                    child.check(self.stderr.write)
                time.sleep(0.2)
        finally:
            for sock in sockets:
                sock.close()  # the workers hold their own copies until they stop listening
            deadline = time.monotonic() + settings.GATEWAY_DRAIN_SECONDS + 15
            if not signals:  # left the loop on an error: stop the children as on SIGTERM
                for child in children:
                    child.signal(signal.SIGTERM)
            for child in children:
                if child.proc is None:
                    continue
                try:
                    child.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.stderr.write(f"{child.name} did not stop in time; killed")
                    child.proc.kill()
                    child.proc.wait()
