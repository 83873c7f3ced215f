from django.core.management.base import BaseCommand

from gateway.config_file import dump, export_config


class Command(BaseCommand):
    help = "Write the current providers and routes in the YAML config format."

    def add_arguments(self, parser):
        parser.add_argument("--include-secrets", action="store_true",
                            help="Write API keys in clear text instead of ${VAR} placeholders.")

    def handle(self, *args, include_secrets=False, **options):
        self.stdout.write(dump(export_config(include_secrets=include_secrets)))
