"""Run the gateway: Daphne plus, for the embedded profile, a Celery worker with
beat, as supervised child processes. Ctrl-C / SIGTERM stops them all."""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the gateway with Daphne (and a Celery worker with beat)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.GATEWAY_HOST)
        parser.add_argument("--port", type=int, default=settings.GATEWAY_PORT)
        parser.add_argument("--no-celery", action="store_true", help="Do not start the Celery worker.")
        parser.add_argument("--access-log", default=None, help="Write Daphne's access log to this file.")

    def handle(self, *args, host, port, no_celery, access_log, **options):
        daphne = [sys.executable, "-m", "gateway.daphne_main", "-b", host, "-p", str(port), "--verbosity", "0",
                  "--proxy-headers"]
        if access_log:
            daphne += ["--access-log", access_log]
        daphne.append("gateway.asgi:application")
        commands = {"daphne": daphne}
        if not no_celery:
            commands["celery"] = [sys.executable, "-m", "celery", "-A", "gateway", "worker", "--beat",
                                  "--loglevel", "WARNING", "--concurrency", "1", "--pool", "solo"]
        children: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(f"Junction listening on http://{host}:{port}  (admin: http://{host}:{port}/admin/)")
        try:
            while not stopping:
                for name, cmd in commands.items():
                    child = children.get(name)
                    if child is None or child.poll() is not None:
                        if child is not None:
                            self.stderr.write(f"{name} exited with {child.returncode}; restarting")
                            time.sleep(1)
                        children[name] = subprocess.Popen(cmd, env=os.environ.copy())
                time.sleep(0.5)
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children.values():
                try:
                    child.wait(15)
                except subprocess.TimeoutExpired:
                    child.kill()
