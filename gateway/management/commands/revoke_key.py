from django.core.management.base import BaseCommand, CommandError

from gateway.services import key_revoke


class Command(BaseCommand):
    help = "Revoke a virtual key by the key itself, its prefix or its id."

    def add_arguments(self, parser):
        parser.add_argument("key")

    def handle(self, *args, key, **options):
        count = key_revoke(key=key)
        if not count:
            raise CommandError("no active key matches")
        self.stdout.write(f"revoked {count} key(s)")
