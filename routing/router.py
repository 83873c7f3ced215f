"""Model resolution and candidate ordering. Pure: no Django, no I/O.

Resolution order (design.md §4): a Route with that name → a Provider with that
name (its default model) → a `provider/model` pair → a model id exactly one
provider serves → the default route.
"""

from __future__ import annotations

from dataclasses import dataclass

from providers.config import ProviderInfo

from .table import ConfigSnapshot, KeyInfo, TargetInfo


@dataclass(slots=True)
class Candidate:
    provider: ProviderInfo
    model: str


@dataclass(slots=True)
class Plan:
    route: str  # route name, or "provider:<name>" / "model:<id>" for direct resolutions
    candidates: list[Candidate]
    reason: str  # how the model name was resolved, for x-gateway-route / explanations


class ResolutionError(Exception):
    def __init__(self, message: str, status: int = 404, type: str = "not_found"):
        super().__init__(message)
        self.message, self.status, self.type = message, status, type


def resolve(snapshot: ConfigSnapshot, model: str, key: KeyInfo | None = None) -> Plan:
    route = snapshot.routes.get(model)
    if route is not None:
        plan = Plan(route.name, _candidates(snapshot, route.targets), "route")
    elif model in snapshot.providers:
        provider = snapshot.providers[model]
        plan = Plan(f"provider:{model}", _with_fallback(snapshot, [TargetInfo(model, provider.default_model)]),
                    "provider")
    elif "/" in model and model.split("/", 1)[0] in snapshot.providers:
        name, upstream_model = model.split("/", 1)
        plan = Plan(f"provider:{name}", _with_fallback(snapshot, [TargetInfo(name, upstream_model)]), "pair")
    elif len(snapshot.model_index.get(model, ())) == 1:
        name = snapshot.model_index[model][0]
        plan = Plan(f"model:{model}", _with_fallback(snapshot, [TargetInfo(name, model)]), "model")
    elif snapshot.default_route and snapshot.default_route in snapshot.routes:
        route = snapshot.routes[snapshot.default_route]
        plan = Plan(route.name, _candidates(snapshot, route.targets), "default")
    else:
        raise ResolutionError(f"The model `{model}` does not exist: no route, provider or provider model has that "
                              "name and no default route is configured.")
    if key is not None and key.allowed_routes is not None and plan.route not in key.allowed_routes:
        raise ResolutionError(f"This key may not use `{model}` (allowed: {', '.join(sorted(key.allowed_routes))}).",
                              403, "permission")
    if not plan.candidates:
        raise ResolutionError(f"`{model}` resolves to `{plan.route}`, which has no enabled target.", 503,
                              "overloaded")
    return plan


def _candidates(snapshot: ConfigSnapshot, targets) -> list[Candidate]:
    out = []
    for target in targets:
        provider = snapshot.providers.get(target.provider)
        if provider is not None and target.model:
            out.append(Candidate(provider, target.model))
    return out


def _with_fallback(snapshot: ConfigSnapshot, first: list[TargetInfo]) -> list[Candidate]:
    seen = {(t.provider, t.model) for t in first}
    chain = list(first) + [t for t in snapshot.fallback if (t.provider, t.model) not in seen]
    return _candidates(snapshot, chain)
