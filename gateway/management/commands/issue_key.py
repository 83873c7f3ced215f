from django.core.management.base import BaseCommand, CommandError

from gateway.services import key_issue


class Command(BaseCommand):
    help = "Issue a virtual key for a user and print it once."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--routes", nargs="*", default=None, help="Allowed route names (default: all).")
        parser.add_argument("--rpm", type=int, default=None)
        parser.add_argument("--tpm", type=int, default=None)
        parser.add_argument("--budget", type=float, default=None, help="Hard budget for this key in USD.")
        parser.add_argument("--period", default="monthly", choices=["daily", "weekly", "monthly", "total"])
        parser.add_argument("--quiet", action="store_true", help="Print only the key.")

    def handle(self, *args, user, name, routes, rpm, tpm, budget, period, quiet, **options):
        try:
            key, plaintext = key_issue(username=user, name=name, routes=routes, rpm_limit=rpm, tpm_limit=tpm,
                                       budget_usd=budget, budget_period=period)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if quiet:
            self.stdout.write(plaintext)
        else:
            self.stdout.write(f"Key for {user} (shown once, store it now):\n{plaintext}")
