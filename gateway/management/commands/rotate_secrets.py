"""Re-encrypt every stored provider secret with the current first key.

After moving the old SECRET_KEY to SECRET_KEY_FALLBACKS (or prepending a new key to
GATEWAY_ENCRYPTION_KEYS), run this once; then the old key can be dropped."""

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from providers.crypto import rotate
from providers.config_version import bump_version
from providers.models import Provider

FIELDS = ("api_key", "aws_secret_access_key")


class Command(BaseCommand):
    help = "Re-encrypt stored provider secrets with the first configured key."

    def handle(self, *args, **options):
        table = connection.ops.quote_name(Provider._meta.db_table)
        columns = ", ".join(connection.ops.quote_name(f) for f in FIELDS)
        rotated, unreadable = 0, []
        with transaction.atomic():
            with connection.cursor() as cursor:  # raw ciphertext: no decryption on the way in
                cursor.execute(f"SELECT id, name, {columns} FROM {table}")
                rows = cursor.fetchall()
            for ident, name, *values in rows:
                update = {}
                for field, value in zip(FIELDS, values):
                    if not value:
                        continue
                    try:
                        update[field] = rotate(value)
                    except ValueError:
                        unreadable.append(f"{name}.{field}")
                if update:
                    sets = ", ".join(f"{connection.ops.quote_name(f)} = %s" for f in update)
                    with connection.cursor() as cursor:
                        cursor.execute(f"UPDATE {table} SET {sets} WHERE id = %s", [*update.values(), ident])
                    rotated += len(update)
        if rotated:
            bump_version()
        self.stdout.write(f"re-encrypted {rotated} secret(s) with the first key")
        if unreadable:
            raise CommandError(f"{len(unreadable)} secret(s) no configured key decrypts (left as they are): "
                               + ", ".join(unreadable))
