"""Writes for the providers app (HackSoft style: `<entity>_<action>`, keyword-only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction

from .config_version import bump_version
from .discovery import Discovered, discover, price_for
from .models import Provider, ProviderModel


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.created)} created, {len(self.updated)} updated, "
                f"{len(self.unchanged)} unchanged")


def _decimal(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def provider_models_sync(*, provider: Provider, found: list[Discovered] | None = None) -> SyncResult:
    """Create a ProviderModel for every model the provider lists, with known prices
    and context windows. Idempotent, and never overwrites what an admin set: an
    existing row only gets a context window or prices it does not have yet.
    Rows for models the provider no longer lists are left alone (disable them in
    the admin). Raises discovery.DiscoveryError when the listing fails."""
    found = discover(provider) if found is None else found
    existing = {m.model_id: m for m in provider.models.all()}
    result = SyncResult()
    new_rows, changed = [], []
    seen = set()
    for item in found:
        if item.model_id in seen:
            continue
        seen.add(item.model_id)
        price = price_for(provider, item)
        context = item.context_window or (price.context_window if price else None)
        row = existing.get(item.model_id)
        if row is None:
            row = ProviderModel(provider=provider, model_id=item.model_id, context_window=context)
            if price is not None:
                _set_prices(row, price)
            new_rows.append(row)
            result.created.append(item.model_id)
            continue
        dirty = False
        if row.context_window is None and context:
            row.context_window, dirty = context, True
        if price is not None and not (row.input_price or row.output_price) and (price.input or price.output):
            _set_prices(row, price)
            dirty = True
        if dirty:
            changed.append(row)
            result.updated.append(item.model_id)
        else:
            result.unchanged.append(item.model_id)
    with transaction.atomic():
        # One write per kind (an OpenRouter listing has hundreds of models); bulk writes
        # send no signals, so the config version is bumped once by hand.
        ProviderModel.objects.bulk_create(new_rows)
        if changed:
            ProviderModel.objects.bulk_update(changed, ["context_window", "input_price", "output_price",
                                                        "cache_read_price", "cache_write_price"])
    if new_rows or changed:
        transaction.on_commit(bump_version)
    return result


def _set_prices(row: ProviderModel, price) -> None:
    row.input_price = _decimal(price.input)
    row.output_price = _decimal(price.output)
    row.cache_read_price = _decimal(price.cache_read)
    row.cache_write_price = _decimal(price.cache_write)
