"""What a config file may say (gateway/config_file.py), checked before anything is
written: unknown keys at any level, unknown enum values and wrong types are errors
naming the file, the path (`providers[2].first_token_timout`) and the closest valid
key or value. A typo is an error at import time, not a surprise in traffic."""

from __future__ import annotations

from providers.schema import (ANY_MAPPING, BOOL, INTEGER, NUMBER, STRING, Either, Enum, ListOf, MapOf,
                              Required, check)


def _schema() -> dict:
    from providers.models import ProviderType
    from routing.models import HostedTools, PromptCacheTTL, Strategy

    model = {"id": Required(STRING), "context_window": INTEGER, "deployment": STRING, "input_price": NUMBER,
             "output_price": NUMBER, "cache_read_price": NUMBER, "cache_write_price": NUMBER,
             "max_output_tokens": INTEGER}
    provider = {
        "name": Required(STRING), "type": Required(Enum(ProviderType.values)), "model": STRING,
        "base_url": STRING, "api_key": STRING, "region": STRING, "api_version": STRING,
        "aws_access_key_id": STRING, "aws_secret_access_key": STRING, "aws_profile": STRING,
        "wire_api": Enum(("auto", "chat", "responses")), "extra_headers": MapOf(STRING),
        "proxy": STRING, "ca_bundle": STRING,
        "connect_timeout": NUMBER, "first_token_timeout": NUMBER, "total_timeout": NUMBER, "enabled": BOOL,
        "models": ListOf(Either(STRING, model)),
    }
    target = {"provider": Required(STRING), "model": STRING, "weight": INTEGER}
    rule = {"name": STRING, "when": ANY_MAPPING, "route": STRING, "provider": STRING, "model": STRING,
            "enabled": BOOL}
    route = {"name": Required(STRING), "strategy": Enum(Strategy.values), "description": STRING,
             "session_affinity": BOOL, "context_window_fallback": BOOL,
             "hosted_tools": Enum(HostedTools.values),
             "prompt_cache": BOOL, "prompt_cache_passthrough": BOOL,
             "prompt_cache_ttl": Enum(PromptCacheTTL.values),
             "response_cache": BOOL, "response_cache_any_temperature": BOOL, "response_cache_ttl": INTEGER,
             "response_cache_max_entries": INTEGER,
             "targets": ListOf(Either(STRING, target)), "rules": ListOf(rule)}
    routing = {"default": STRING, "fallback": Either(STRING, ListOf(STRING)),
               "hosted_tools": Enum(HostedTools.values)}
    return {"providers": ListOf(provider), "routing": routing, "routes": ListOf(route)}


def validate(data, source: str = "config") -> None:
    """Raise ConfigError listing every problem, each as `source: path: problem`."""
    from .config_file import ConfigError

    problems: list[str] = []
    check(data, _schema(), "", problems)
    if problems:
        raise ConfigError("\n".join(f"{source}: {p}" for p in problems))


