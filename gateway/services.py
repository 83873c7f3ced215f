"""Writes (HackSoft style): keys and users. Views, admin and commands call these."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from routing.models import Route

from .keys import display_prefix, generate_key, hash_key
from .models import Budget, VirtualKey


@transaction.atomic
def key_issue(*, username: str, name: str = "", routes: list[str] | None = None,
              expires_at: datetime | None = None, rpm_limit: int | None = None,
              tpm_limit: int | None = None, budget_usd: float | None = None,
              budget_period: str = "monthly") -> tuple[VirtualKey, str]:
    """Create a key for `username` (the user is created if needed). Returns the row
    and the plaintext key, which exists only here: show it once."""
    user, _ = get_user_model().objects.get_or_create(username=username)
    plaintext = generate_key()
    key = VirtualKey(user=user, name=name, prefix=display_prefix(plaintext), key_hash=hash_key(plaintext),
                     expires_at=expires_at, rpm_limit=rpm_limit, tpm_limit=tpm_limit)
    key.save()
    if routes:
        found = list(Route.objects.filter(name__in=routes))
        missing = set(routes) - {r.name for r in found}
        if missing:
            raise ValueError(f"unknown routes: {', '.join(sorted(missing))}")
        key.allowed_routes.set(found)
    if budget_usd is not None:
        Budget.objects.create(key=key, amount_usd=budget_usd, period=budget_period)
    return key, plaintext


def key_revoke(*, key: str) -> int:
    """Revoke by plaintext key, prefix or id. Returns how many keys were revoked."""
    qs = VirtualKey.objects.filter(revoked_at__isnull=True)
    if key.isdigit():
        qs = qs.filter(id=int(key))
    elif len(key) > 16:
        qs = qs.filter(key_hash=hash_key(key))
    else:
        qs = qs.filter(prefix=key)
    count = 0
    for row in qs:  # save() (not update()) so the config-changed signal fires
        row.revoked_at = timezone.now()
        row.save(update_fields=["revoked_at"])
        count += 1
    return count
