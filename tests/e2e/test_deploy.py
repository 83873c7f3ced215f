"""deploy/: the systemd units and the Procfile start the scaled profile. Parsed here, they
must name the same three commands (web, worker, beat); those commands are then started
as the units would start them (env file, working directory), against real Redis: the web
answers and drains on SIGTERM (exit 0), Celery's worker and beat run and stop cleanly."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from .conftest import ROOT, SERVER_ENV, free_port

DEPLOY = ROOT / "deploy"
APP_DIR, VENV_BIN = "/srv/junction/app", "/srv/junction/venv/bin/"


def unit(name: str) -> dict[str, list[str]]:
    """The [Service] section of a unit file: key → values (keys may repeat)."""
    section, out = None, {}
    for raw in (DEPLOY / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def procfile() -> dict[str, str]:
    return dict(line.split(": ", 1) for line in (DEPLOY / "Procfile").read_text().splitlines()
                if line and not line.startswith("#"))


def env_file() -> dict[str, str]:
    return dict(line.split("=", 1) for line in (DEPLOY / "env.example").read_text().splitlines()
                if line and not line.startswith("#"))


def local(command: list[str]) -> list[str]:
    """A unit's command with this checkout's interpreter instead of /srv/junction/venv."""
    if command[0] == VENV_BIN + "python" or command[0] == "python":
        return [sys.executable, *command[1:]]
    if command[0] in (VENV_BIN + "celery", "celery"):
        return [sys.executable, "-m", "celery", *command[1:]]
    raise AssertionError(f"unexpected program {command[0]}")


def test_units_and_procfile_name_the_same_commands():
    units = {name: unit(f"junction-{name}.service") for name in ("web", "worker", "beat")}
    processes = procfile()
    assert set(processes) == set(units)
    for name, service in units.items():
        [exec_start] = service["ExecStart"]
        assert service["WorkingDirectory"] == [APP_DIR]
        assert service["EnvironmentFile"] == ["/etc/junction/env"]
        assert local(shlex.split(exec_start)) == local(shlex.split(processes[name]))
    web = units["web"]
    # serve forwards one SIGTERM to its workers; systemd must not send them another.
    assert web["KillMode"] == ["mixed"] and web["KillSignal"] == ["SIGTERM"]
    assert int(web["TimeoutStopSec"][0]) > int(env_file()["GATEWAY_DRAIN_SECONDS"])
    assert "serve" in processes["web"] and "--no-celery" in processes["web"]
    assert "beat" in processes["beat"].split() and "--beat" not in processes["worker"]


def test_the_unit_commands_start_the_scaled_profile(redis_url):
    data = tempfile.mkdtemp(prefix="junction-deploy-")
    port = free_port()
    env = {**os.environ, **env_file()}
    env.update({"PYTHONUNBUFFERED": "1", "DATABASE_URL": SERVER_ENV["DATABASE_URL"], "REDIS_URL": redis_url,
                "CELERY_BROKER_URL": redis_url, "GATEWAY_DATA_DIR": data, "GATEWAY_HOST": "127.0.0.1",
                "GATEWAY_PORT": str(port), "GATEWAY_DRAIN_SECONDS": "2",
                "SECRET_KEY": SERVER_ENV["SECRET_KEY"]})
    started = {}
    try:
        for name in ("web", "worker", "beat"):
            [exec_start] = unit(f"junction-{name}.service")["ExecStart"]
            log = open(Path(data) / f"{name}.log", "wb")
            started[name] = subprocess.Popen(local(shlex.split(exec_start)), cwd=ROOT, env=env, stdout=log,
                                             stderr=subprocess.STDOUT)
        deadline = time.time() + 40
        live = False
        while time.time() < deadline and not live:
            try:
                live = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.2)
        assert live, (Path(data) / "web.log").read_text()
        time.sleep(3)
        for name, proc in started.items():
            assert proc.poll() is None, f"{name}: " + (Path(data) / f"{name}.log").read_text()
        text = (Path(data) / "web.log").read_text()
        # Scaled profile (REDIS_URL): one worker per core by default, and the note on shared state.
        workers = os.cpu_count() or 1
        assert (f"{workers} workers." if workers > 1 else "1 worker.") in text
    finally:
        codes = {}
        for proc in started.values():
            proc.send_signal(signal.SIGTERM)
        for name, proc in started.items():
            try:
                codes[name] = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = "killed"
    assert codes["web"] == 0, (Path(data) / "web.log").read_text()
    assert set(codes.values()) <= {0}, codes
