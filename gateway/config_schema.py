"""What a config file may say (gateway/config_file.py), checked before anything is
written: unknown keys at any level, unknown enum values and wrong types are errors
naming the file, the path (`providers[2].first_token_timout`) and the closest valid
key or value. A typo is an error at import time, not a surprise in traffic."""

from __future__ import annotations

import difflib


class Enum(tuple):
    """One of these strings."""


class ListOf:
    def __init__(self, item) -> None:
        self.item = item


class Either:
    def __init__(self, *options) -> None:
        self.options = options


class MapOf:
    """A mapping of free keys to values of one kind (extra_headers)."""

    def __init__(self, value) -> None:
        self.value = value


class Required:
    def __init__(self, kind) -> None:
        self.kind = kind


NUMBER, INTEGER, BOOL, STRING, ANY_MAPPING = "number", "integer", "boolean", "string", "mapping"


def _schema() -> dict:
    from providers.models import ProviderType
    from routing.models import Strategy

    model = {"id": Required(STRING), "context_window": INTEGER, "deployment": STRING, "input_price": NUMBER,
             "output_price": NUMBER, "cache_read_price": NUMBER, "cache_write_price": NUMBER}
    provider = {
        "name": Required(STRING), "type": Required(Enum(ProviderType.values)), "model": STRING,
        "base_url": STRING, "api_key": STRING, "region": STRING, "api_version": STRING,
        "aws_access_key_id": STRING, "aws_secret_access_key": STRING, "aws_profile": STRING,
        "wire_api": Enum(("auto", "chat", "responses")), "extra_headers": MapOf(STRING),
        "connect_timeout": NUMBER, "first_token_timeout": NUMBER, "total_timeout": NUMBER, "enabled": BOOL,
        "models": ListOf(Either(STRING, model)),
    }
    target = {"provider": Required(STRING), "model": STRING, "weight": INTEGER}
    rule = {"name": STRING, "when": ANY_MAPPING, "route": STRING, "provider": STRING, "model": STRING,
            "enabled": BOOL}
    route = {"name": Required(STRING), "strategy": Enum(Strategy.values), "description": STRING,
             "session_affinity": BOOL, "context_window_fallback": BOOL,
             "targets": ListOf(Either(STRING, target)), "rules": ListOf(rule)}
    routing = {"default": STRING, "fallback": Either(STRING, ListOf(STRING))}
    return {"providers": ListOf(provider), "routing": routing, "routes": ListOf(route)}


def validate(data, source: str = "config") -> None:
    """Raise ConfigError listing every problem, each as `source: path: problem`."""
    from .config_file import ConfigError

    problems: list[str] = []
    _check(data, _schema(), "", problems)
    if problems:
        raise ConfigError("\n".join(f"{source}: {p}" for p in problems))


def check_value(value, kind, path: str) -> list[str]:
    """The problems of one value (the admin forms use this for the same rules)."""
    problems: list[str] = []
    _check(value, kind, path, problems)
    return problems


def _join(path: str, key) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))


def _type_name(value) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "a mapping", type(None): "empty"}.get(type(value), type(value).__name__)


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else f" (one of: {', '.join(map(str, choices))})"


def _check(value, kind, path: str, problems: list[str]) -> None:
    if isinstance(kind, Required):
        kind = kind.kind
    if value is None and not isinstance(kind, dict):
        return  # an empty value means "not set" (as `key:` with nothing after it)
    if isinstance(kind, dict):
        if value is None:
            return
        if not isinstance(value, dict):
            problems.append(f"{path or 'the file'}: expected a mapping, got {_type_name(value)}")
            return
        for key, item in value.items():
            if key not in kind:
                problems.append(f"{_join(path, key)}: unknown key{_suggest(key, kind)}")
            else:
                _check(item, kind[key], _join(path, key), problems)
        for key, spec in kind.items():
            if isinstance(spec, Required) and value.get(key) in (None, ""):
                problems.append(f"{_join(path, key)}: required")
    elif isinstance(kind, ListOf):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {_type_name(value)}")
            return
        for i, item in enumerate(value):
            _check(item, kind.item, _join(path, i), problems)
    elif isinstance(kind, Either):
        attempts = []
        for option in kind.options:
            found: list[str] = []
            _check(value, option, path, found)
            if not found:
                return
            attempts.append(found)
        # Report against the option of the value's own shape (a mapping's keys, say).
        shaped = [a for o, a in zip(kind.options, attempts) if isinstance(o, dict) == isinstance(value, dict)]
        problems.extend((shaped or attempts)[0])
    elif isinstance(kind, MapOf):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {_type_name(value)}")
            return
        for key, item in value.items():
            _check(item, kind.value, _join(path, key), problems)
    elif isinstance(kind, Enum):
        if value not in kind:
            problems.append(f"{path}: unknown value `{value}`{_suggest(value, kind)}")
    elif kind == STRING:
        if isinstance(value, (bool, list, dict)):
            problems.append(f"{path}: expected a string, got {_type_name(value)}")
    elif kind in (NUMBER, INTEGER):
        number = value
        if isinstance(value, str):  # ${VAR} expansions are strings
            try:
                number = float(value) if kind == NUMBER else int(value)
            except ValueError:
                number = None
        if isinstance(number, bool) or not isinstance(number, (int, float)) or \
                (kind == INTEGER and isinstance(number, float)):
            problems.append(f"{path}: expected {'an integer' if kind == INTEGER else 'a number'}, "
                            f"got {_type_name(value)} `{value}`")
        elif number < 0:
            problems.append(f"{path}: must not be negative")
    elif kind == BOOL:
        if not isinstance(value, bool) and str(value).lower() not in ("true", "false", "yes", "no", "1", "0"):
            problems.append(f"{path}: expected true or false, got {_type_name(value)} `{value}`")
    elif kind == ANY_MAPPING:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {_type_name(value)}")
