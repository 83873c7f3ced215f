"""Fixed personas and config builders for end-to-end tests (ORM writes, as the admin does)."""

from __future__ import annotations

import itertools
import time

from django.db import close_old_connections

from gateway.models import UsageRecord
from gateway.services import key_issue
from providers.models import Provider, ProviderModel
from routing.models import Route, RouteTarget

_seq = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_seq)}-{int(time.time() * 1000) % 100000}"


def provider(base_url: str, *, type: str = "openai", name: str | None = None, model: str = "mock",
             **fields) -> Provider:
    return Provider.objects.create(name=name or unique(type), type=type, base_url=base_url, default_model=model,
                                   api_key=fields.pop("api_key", "sk-upstream-secret"), **fields)


def route(name: str, targets: list[tuple[Provider, str]], strategy: str = "priority") -> Route:
    r, _ = Route.objects.get_or_create(name=name, defaults={"strategy": strategy})
    r.targets.all().delete()
    for i, (p, model) in enumerate(targets):
        RouteTarget.objects.create(route=r, provider=p, model=model, order=i)
    r.save()  # bump once more after the targets
    return r


def price(p: Provider, model_id: str, input_price: float, output_price: float, **kw) -> ProviderModel:
    return ProviderModel.objects.create(provider=p, model_id=model_id, input_price=input_price,
                                        output_price=output_price, **kw)


def alice_key(**kw) -> str:
    return key_issue(username="alice", name="alice laptop", **kw)[1]


def user_limits(username: str, *, rpm_limit: int | None = None, tpm_limit: int | None = None):
    """Rate limits of `username` (created if needed) over all of their keys."""
    from django.contrib.auth import get_user_model

    from gateway.models import UserLimits

    user, _ = get_user_model().objects.get_or_create(username=username)
    return UserLimits.objects.update_or_create(user=user, defaults={"rpm_limit": rpm_limit,
                                                                    "tpm_limit": tpm_limit})[0]


def wait_record(request_id: str, timeout: float = 5.0) -> UsageRecord:
    deadline = time.time() + timeout
    while time.time() < deadline:
        close_old_connections()
        rec = UsageRecord.objects.filter(request_id=request_id).first()
        if rec is not None:
            return rec
        time.sleep(0.05)
    raise AssertionError(f"no UsageRecord for {request_id} after {timeout}s")


def records_for_session(session: str, count: int, timeout: float = 10.0) -> list[UsageRecord]:
    deadline = time.time() + timeout
    rows: list[UsageRecord] = []
    while time.time() < deadline:
        close_old_connections()
        rows = list(UsageRecord.objects.filter(session_id=session))
        if len(rows) >= count:
            time.sleep(0.3)  # anything extra (double counting) would show up now
            close_old_connections()
            return list(UsageRecord.objects.filter(session_id=session))
        time.sleep(0.05)
    return rows
