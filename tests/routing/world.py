"""Fixed personas and ORM builders for the routing tests that use the database."""

from __future__ import annotations

import itertools
import time

from django.contrib.auth import get_user_model

from providers.models import Provider, ProviderModel
from routing.models import Route, RouteRule, RouteTarget

_seq = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_seq)}-{int(time.time() * 1000) % 100000}"


def provider(base_url: str, *, type: str = "openai", model: str = "mock", **fields) -> Provider:
    return Provider.objects.create(name=fields.pop("name", None) or unique(type), type=type, base_url=base_url,
                                   default_model=model, api_key=fields.pop("api_key", "sk-upstream-secret"),
                                   **fields)


def route(targets: list[tuple[Provider, str]], *, name: str | None = None, strategy: str = "priority",
          **fields) -> Route:
    r = Route.objects.create(name=name or unique("route"), strategy=strategy, **fields)
    for i, (p, model) in enumerate(targets):
        RouteTarget.objects.create(route=r, provider=p, model=model, order=i)
    return r


def rule(r: Route, name: str, conditions: dict, *, order: int = 0, **target) -> RouteRule:
    return RouteRule.objects.create(route=r, name=name, conditions=conditions, order=order, **target)


def window(p: Provider, model_id: str, context_window: int, input_price=1, output_price=2, **fields) -> ProviderModel:
    return ProviderModel.objects.create(provider=p, model_id=model_id, context_window=context_window,
                                        input_price=input_price, output_price=output_price, **fields)


def admin_user():
    user, created = get_user_model().objects.get_or_create(username="root", defaults={
        "is_staff": True, "is_superuser": True})
    if created:
        user.set_password("root-password")
        user.save()
    return user
