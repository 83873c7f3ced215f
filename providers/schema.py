"""A small schema checker for configuration values (the config file, gateway/config_schema.py,
and the admin forms): each problem names its path (`providers[2].first_token_timout`) and
the closest valid key or value. Pure Python."""

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


def check_value(value, kind, path: str) -> list[str]:
    """The problems of one value (the admin forms use this for the same rules)."""
    problems: list[str] = []
    check(value, kind, path, problems)
    return problems


def _join(path: str, key) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))


def _type_name(value) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "a mapping", type(None): "empty"}.get(type(value), type(value).__name__)


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else f" (one of: {', '.join(map(str, choices))})"


def check(value, kind, path: str, problems: list[str]) -> None:
    """Append to `problems` what is wrong with `value` against `kind`."""
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
                check(item, kind[key], _join(path, key), problems)
        for key, spec in kind.items():
            if isinstance(spec, Required) and value.get(key) in (None, ""):
                problems.append(f"{_join(path, key)}: required")
    elif isinstance(kind, ListOf):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {_type_name(value)}")
            return
        for i, item in enumerate(value):
            check(item, kind.item, _join(path, i), problems)
    elif isinstance(kind, Either):
        attempts = []
        for option in kind.options:
            found: list[str] = []
            check(value, option, path, found)
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
            check(item, kind.value, _join(path, key), problems)
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
