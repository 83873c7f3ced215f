"""First-run setup for the quick start: migrate, load config.yaml (else the demo
config), create an admin login if there is none, and issue a demo key.

The demo config and the demo key are set up once per installation and never again:
what an admin removed (the demo key revoked or deleted, the demo providers deleted)
stays removed across restarts. The steps done are remembered in the data dir
(bootstrap.json); an installation from before that file existed counts a step as done
when its result is there (providers, a key of the `demo` user, revoked or not)."""

import json
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from gateway.config_file import demo_config, import_config, load
from gateway.models import VirtualKey
from gateway.services import key_issue
from providers.models import Provider


MARKER = "bootstrap.json"


def _done() -> set[str]:
    try:
        return set(json.loads((Path(settings.DATA_DIR) / MARKER).read_text())["done"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _remember(done: set[str]) -> None:
    path = Path(settings.DATA_DIR) / MARKER
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"done": sorted(done)}) + "\n")
    tmp.replace(path)


class Command(BaseCommand):
    help = "Migrate, load config, create an admin and a demo key (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--config", default=str(settings.BASE_DIR / "config.yaml"))

    def handle(self, *args, config, **options):
        call_command("migrate", verbosity=0)
        done = _done()
        path = Path(config)
        if path.exists():
            counts = import_config(load(path.read_text()), source=str(path))
            self.stdout.write(f"Loaded {path}: {counts}")
        elif "demo_config" not in done and not Provider.objects.exists():
            import_config(load(demo_config()))
            self.stdout.write("Loaded the demo config (no config.yaml found).")
        done.add("demo_config")  # a first run with config.yaml never brings the demo config either
        User = get_user_model()
        if not User.objects.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", "", password)
            self.stdout.write(self.style.SUCCESS(f"Admin login (shown once): admin / {password}"))
        if "demo_key" not in done and not VirtualKey.objects.filter(user__username="demo").exists():
            _, plaintext = key_issue(username="demo", name="demo key")
            self.stdout.write(self.style.SUCCESS(f"Demo virtual key (shown once): {plaintext}"))
        else:
            self.stdout.write("The demo key was issued on the first run (never again); issue a key with "
                              "`python manage.py issue_key --user NAME` or in the admin.")
        done.add("demo_key")
        _remember(done)
