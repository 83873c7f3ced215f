"""First-run setup for the quick start: migrate, load config.yaml (else the demo
config), create an admin login if there is none, and issue a demo key."""

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


class Command(BaseCommand):
    help = "Migrate, load config, create an admin and a demo key (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--config", default=str(settings.BASE_DIR / "config.yaml"))

    def handle(self, *args, config, **options):
        call_command("migrate", verbosity=0)
        path = Path(config)
        if path.exists():
            counts = import_config(load(path.read_text()), source=str(path))
            self.stdout.write(f"Loaded {path}: {counts}")
        elif not Provider.objects.exists():
            import_config(load(demo_config()))
            self.stdout.write("Loaded the demo config (no config.yaml found).")
        User = get_user_model()
        if not User.objects.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", "", password)
            self.stdout.write(self.style.SUCCESS(f"Admin login (shown once): admin / {password}"))
        if not VirtualKey.objects.filter(user__username="demo", revoked_at__isnull=True).exists():
            _, plaintext = key_issue(username="demo", name="demo key")
            self.stdout.write(self.style.SUCCESS(f"Demo virtual key (shown once): {plaintext}"))
        else:
            self.stdout.write("A demo key exists already; issue another with "
                              "`python manage.py issue_key --user NAME`.")
