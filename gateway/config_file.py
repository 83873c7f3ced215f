"""The YAML config format (design.md §5): import (idempotent upsert by name) and export.

    providers:
      - name: local-fast
        type: ollama
        model: qwen2.5-coder:14b
        base_url: http://localhost:11434      # optional
        api_key: ${OPENAI_API_KEY}            # ${VAR} / ${VAR:-default} from the environment
        models:                               # optional: prices (USD per 1M tokens), context windows
          - id: qwen2.5-coder:14b
            context_window: 32768
    routing:
      default: local-fast                     # a provider or route name
      fallback: cloud-strong                  # a name or a list, tried in order
    routes:                                   # optional: named aliases clients can send as `model`
      - name: smart
        strategy: priority
        targets: [cloud-strong, local-fast/qwen2.5-coder:7b]

`routing.default` + `routing.fallback` become the route named `default`: its first
target serves requests whose model resolves to nothing else, the rest is the
fallback chain that is also appended to direct provider/model requests.
"""

from __future__ import annotations

import logging
import os
import re
from decimal import Decimal

import yaml
from django.db import transaction

from providers.models import Provider, ProviderModel, ProviderType
from routing.models import HostedTools, Route, RouteTarget
from routing.selectors import CACHE_FIELDS

from .snapshot import DEFAULT_ROUTE

log = logging.getLogger("junction.config")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
PROVIDER_FIELDS = ("base_url", "region", "api_version", "aws_access_key_id", "aws_profile",
                   "connect_timeout", "first_token_timeout", "total_timeout", "enabled", "extra_headers",
                   "wire_api", "proxy", "ca_bundle")
SECRET_FIELDS = Provider.SECRET_FIELDS
PRICE_FIELDS = ("input_price", "output_price", "cache_read_price", "cache_write_price")


class ConfigError(ValueError):
    pass


def expand(value, missing: list[str] | None = None):
    """Replace ${VAR} / ${VAR:-default} (shell rules: the default also stands in for an empty
    value; `${VAR:-}` is explicitly empty). Unset variables without a default are appended to
    `missing`; without a list to collect them, the first one raises ConfigError."""
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            current = os.environ.get(name)
            if default is not None:
                return current or default
            if current is None:
                if missing is None:
                    raise ConfigError(f"environment variable {name} is not set (write ${{{name}:-}} "
                                      f"for an empty value)")
                if name not in missing:
                    missing.append(name)
                return ""
            return current
        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [expand(v, missing) for v in value]
    if isinstance(value, dict):
        return {k: expand(v, missing) for k, v in value.items()}
    return value


def load(text: str) -> dict:
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ConfigError("the config file must be a mapping with `providers` and `routing`")
    missing: list[str] = []
    data = expand(data, missing)
    if missing:
        # An unset key or URL would otherwise become "" and fail much later, far from its cause.
        raise ConfigError("environment variable(s) not set: " + ", ".join(missing)
                          + " (give a default with ${VAR:-default}, or ${VAR:-} for empty)")
    return data


def _target(spec, providers: dict[str, Provider]) -> tuple[Provider, str, int]:
    if isinstance(spec, dict):
        name, model, weight = spec.get("provider"), spec.get("model", ""), int(spec.get("weight", 1))
    else:
        name, _, model = str(spec).partition("/")
        weight = 1
    if name not in providers:
        raise ConfigError(f"route target `{spec}` names an unknown provider")
    return providers[name], model or "", weight


@transaction.atomic
def import_config(data: dict, source: str = "config", check: bool = False) -> dict:
    """Upsert providers, models and routes by name. Returns counts. The whole file is
    validated first (gateway/config_schema.py); `check` rolls everything back."""
    from .config_schema import validate

    validate(data, source)
    counts = {"providers": 0, "models": 0, "routes": 0, "secrets cleared": 0}
    providers: dict[str, Provider] = {p.name: p for p in Provider.objects.all()}
    for spec in data.get("providers") or []:
        if not isinstance(spec, dict) or not spec.get("name") or not spec.get("type"):
            raise ConfigError(f"each provider needs `name` and `type`: {spec!r}")
        if spec["type"] not in ProviderType.values:
            raise ConfigError(f"provider `{spec['name']}`: unknown type `{spec['type']}` "
                              f"(one of {', '.join(ProviderType.values)})")
        provider = providers.get(spec["name"]) or Provider(name=spec["name"])
        before = {f: getattr(provider, f) for f in Provider.DESTINATION_FIELDS} if provider.pk else None
        provider.type = spec["type"]
        provider.default_model = spec.get("model", provider.default_model or "")
        for field in PROVIDER_FIELDS + SECRET_FIELDS:
            if field in spec:
                setattr(provider, field, spec[field] if spec[field] is not None else "")
        if before is not None:
            counts["secrets cleared"] += _clear_moved_secrets(provider, before, spec)
        provider.full_clean(exclude=["base_url"])  # base_url may be http://localhost…
        provider.save()
        providers[provider.name] = provider
        counts["providers"] += 1
        for model in spec.get("models") or []:
            model = {"id": model} if isinstance(model, str) else model
            defaults = {f: Decimal(str(model[f])) for f in PRICE_FIELDS if model.get(f) is not None}
            for f in ("context_window", "deployment", "max_output_tokens"):
                if f in model:
                    defaults[f] = model[f]
            ProviderModel.objects.update_or_create(provider=provider, model_id=model["id"], defaults=defaults)
            counts["models"] += 1

    routing = data.get("routing") or {}
    route_specs = list(data.get("routes") or [])
    if routing.get("default"):
        fallback = routing.get("fallback") or []
        fallback = [fallback] if isinstance(fallback, str) else list(fallback)
        route_specs.append({"name": DEFAULT_ROUTE, "strategy": "priority",
                            "targets": [routing["default"], *fallback],
                            **({"hosted_tools": routing["hosted_tools"]} if "hosted_tools" in routing else {})})
    routes = {r.name: r for r in Route.objects.all()}
    for spec in route_specs:
        route = routes.get(spec["name"]) or Route(name=spec["name"])
        route.strategy = spec.get("strategy", "priority")
        route.description = spec.get("description", route.description or "")
        for flag in ("session_affinity", "context_window_fallback"):
            if flag in spec:
                setattr(route, flag, bool(spec[flag]))
        if "hosted_tools" in spec:
            if spec["hosted_tools"] not in HostedTools.values:
                raise ConfigError(f"route `{route.name}`: hosted_tools must be one of "
                                  f"{', '.join(HostedTools.values)}, not `{spec['hosted_tools']}`")
            route.hosted_tools = spec["hosted_tools"]
        for field in CACHE_FIELDS:  # types and enums checked by config_schema before anything is written
            if field in spec:
                setattr(route, field, spec[field])
        route.save()
        targets = []
        for item in spec.get("targets") or []:
            name = item.get("provider") if isinstance(item, dict) else str(item).partition("/")[0]
            if name not in providers and name in routes:  # a route named as a target: inline its targets
                targets += [(t.provider, t.model, t.weight) for t in routes[name].targets.all()]
            else:
                targets.append(_target(item, providers))
        route.targets.all().delete()
        RouteTarget.objects.bulk_create([RouteTarget(route=route, provider=p, model=m, weight=w, order=i)
                                         for i, (p, m, w) in enumerate(targets)])
        routes[route.name] = route
        counts["routes"] += 1
    for spec in route_specs:
        if "rules" in spec:
            _import_rules(routes[spec["name"]], spec["rules"] or [], routes, providers)
    if check:  # everything ran (references, model validation): now undo it
        transaction.set_rollback(True)
    if not counts["secrets cleared"]:
        del counts["secrets cleared"]
    return counts


def _clear_moved_secrets(provider: Provider, before: dict, spec: dict) -> int:
    """A provider whose destination changed keeps no secret the file did not supply again
    (the admin form's rule, providers.models.Provider.DESTINATION_FIELDS)."""
    moved = [f for f, old in before.items() if getattr(provider, f) != old]
    if not moved:
        return 0
    cleared = [f for f in SECRET_FIELDS if f not in spec and getattr(provider, f)]
    for field in cleared:
        setattr(provider, field, "")
    if cleared:
        log.warning("provider %s: %s changed without the secrets; cleared the stored %s",
                    provider.name, ", ".join(moved), ", ".join(cleared))
    return len(cleared)


def _import_rules(route: Route, specs: list, routes: dict[str, Route], providers: dict[str, Provider]) -> None:
    """`rules: [{name, when: {conditions}, route: NAME | provider: NAME, model: ID}]`, in order."""
    from routing.models import RouteRule
    from routing.rules import parse_conditions

    route.rules.all().delete()
    for order, spec in enumerate(specs):
        try:
            parse_conditions(spec.get("when") or {})
        except ValueError as exc:
            raise ConfigError(f"route `{route.name}` rule `{spec.get('name')}`: {exc}") from None
        rule = RouteRule(route=route, order=order, name=spec.get("name") or f"rule {order + 1}",
                         enabled=spec.get("enabled", True), conditions=spec.get("when") or {})
        if spec.get("route"):
            if spec["route"] not in routes:
                raise ConfigError(f"rule `{rule.name}` targets unknown route `{spec['route']}`")
            rule.target_route = routes[spec["route"]]
        elif spec.get("provider"):
            if spec["provider"] not in providers:
                raise ConfigError(f"rule `{rule.name}` targets unknown provider `{spec['provider']}`")
            rule.target_provider, rule.target_model = providers[spec["provider"]], spec.get("model", "")
        else:
            raise ConfigError(f"rule `{rule.name}` needs a `route` or a `provider` target")
        rule.save()


def export_config(include_secrets: bool = False) -> dict:
    """The same format back. Secrets are written as ${ENV} placeholders unless asked for."""
    out: dict = {"providers": [], "routes": []}
    for p in Provider.objects.prefetch_related("models"):
        spec = {"name": p.name, "type": p.type}
        if p.default_model:
            spec["model"] = p.default_model
        for field in PROVIDER_FIELDS:
            value = getattr(p, field)
            default = Provider._meta.get_field(field).get_default()
            if value not in ("", None) and value != default:
                spec[field] = value
        for field in SECRET_FIELDS:
            if getattr(p, field):
                spec[field] = getattr(p, field) if include_secrets else \
                    "${%s_%s}" % (p.name.upper().replace("-", "_"), field.upper())
        models = []
        for m in p.models.all():
            item = {"id": m.model_id}
            if m.context_window:
                item["context_window"] = m.context_window
            if m.deployment:
                item["deployment"] = m.deployment
            if m.max_output_tokens:
                item["max_output_tokens"] = m.max_output_tokens
            for f in PRICE_FIELDS:
                value = getattr(m, f)
                if value:
                    item[f] = float(value)
            models.append(item)
        if models:
            spec["models"] = models
        out["providers"].append(spec)
    for r in Route.objects.prefetch_related("targets__provider", "rules__target_route", "rules__target_provider"):
        targets = [t.provider.name + ("/" + t.model if t.model else "") if t.weight == 1 else
                   {"provider": t.provider.name, "model": t.model, "weight": t.weight} for t in r.targets.all()]
        if r.name == DEFAULT_ROUTE and r.strategy == "priority" and targets and all(isinstance(t, str) for t in targets):
            out["routing"] = {"default": targets[0]}
            if len(targets) > 1:
                out["routing"]["fallback"] = targets[1:] if len(targets) > 2 else targets[1]
            if r.hosted_tools != HostedTools.MAP:
                out["routing"]["hosted_tools"] = r.hosted_tools
            continue
        spec = {"name": r.name, "strategy": r.strategy, "targets": targets}
        for flag in ("session_affinity", "context_window_fallback"):
            if not getattr(r, flag):
                spec[flag] = False
        if r.hosted_tools != HostedTools.MAP:
            spec["hosted_tools"] = r.hosted_tools
        for field in CACHE_FIELDS:
            if getattr(r, field) != Route._meta.get_field(field).default:
                spec[field] = getattr(r, field)
        rules = []
        for rule in r.rules.all():
            item = {"name": rule.name, "when": rule.conditions}
            if rule.target_route_id:
                item["route"] = rule.target_route.name
            else:
                item["provider"] = rule.target_provider.name
                if rule.target_model:
                    item["model"] = rule.target_model
            if not rule.enabled:
                item["enabled"] = False
            rules.append(item)
        if rules:
            spec["rules"] = rules
        out["routes"].append(spec)
    if not out["routes"]:
        del out["routes"]
    return out


def dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


DEMO_CONFIG = """\
# Junction demo config (used when no config.yaml exists). Edit in the admin or
# copy to config.yaml and run `python manage.py import_config config.yaml`.
providers:
  - name: local-fast
    type: ollama
    model: qwen2.5-coder:14b
    base_url: ${OLLAMA_HOST:-http://localhost:11434}
{cloud}routing:
  default: local-fast
{fallback}"""


def demo_config() -> str:
    cloud, fallback = "", ""
    if os.environ.get("ANTHROPIC_API_KEY"):
        cloud = ("  - name: cloud-strong\n    type: anthropic\n    model: claude-sonnet-4-5\n"
                 "    api_key: ${ANTHROPIC_API_KEY}\n")
    elif os.environ.get("OPENAI_API_KEY"):
        cloud = "  - name: cloud-strong\n    type: openai\n    model: gpt-4o\n    api_key: ${OPENAI_API_KEY}\n"
    if cloud:
        fallback = "  fallback: cloud-strong\n"
    return DEMO_CONFIG.replace("{cloud}", cloud).replace("{fallback}", fallback)
