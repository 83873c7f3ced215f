from django.core.management.base import BaseCommand, CommandError

from providers.discovery import DiscoveryError
from providers.models import Provider
from providers.services import provider_models_sync


class Command(BaseCommand):
    help = ("List the models a provider serves and create ProviderModel rows for them, with known prices "
            "(idempotent; prices an admin set are kept).")

    def add_arguments(self, parser):
        parser.add_argument("provider", help="Provider name.")

    def handle(self, *args, provider, **options):
        try:
            row = Provider.objects.get(name=provider)
        except Provider.DoesNotExist:
            names = ", ".join(Provider.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"No provider named `{provider}` (providers: {names}).") from None
        try:
            result = provider_models_sync(provider=row)
        except DiscoveryError as exc:
            raise CommandError(f"{row.name} ({row.type}): {exc}") from None
        for model_id in result.created:
            self.stdout.write(f"  + {model_id}")
        for model_id in result.updated:
            self.stdout.write(f"  ~ {model_id}")
        self.stdout.write(f"{row.name}: {result.summary()}.")
