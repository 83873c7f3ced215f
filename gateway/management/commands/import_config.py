from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from gateway.config_file import ConfigError, demo_config, import_config, load


class Command(BaseCommand):
    help = "Upsert providers, models and routes from a YAML config file (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="YAML file; omit with --demo for the built-in demo config")
        parser.add_argument("--demo", action="store_true")
        parser.add_argument("--check", action="store_true",
                            help="Validate the file (names, types, references) without writing anything.")

    def handle(self, *args, file=None, demo=False, check=False, **options):
        if not file and not demo:
            raise CommandError("give a FILE or --demo")
        try:
            text = demo_config() if demo else Path(file).read_text()
            counts = import_config(load(text), source=file or "demo config", check=check)
        except (OSError, ConfigError) as exc:
            raise CommandError(str(exc)) from None
        except Exception as exc:  # validation errors from full_clean
            raise CommandError(f"invalid config: {exc}") from None
        summary = ", ".join(f"{v} {k}" for k, v in counts.items())
        self.stdout.write(f"{file}: valid ({summary}); nothing written" if check else "imported " + summary)
