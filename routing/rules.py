"""Route rules: parse a rule's conditions (the JSON an admin writes) and match them
against a request's features. Pure: no Django, no I/O.

Conditions (all optional; every one given must hold):

    min_tools / max_tools          number of tools offered (no `tools` field counts as 0)
    min_prompt_tokens /            estimated prompt size (~4 bytes a token)
      max_prompt_tokens
    has_images                     true / false
    reasoning_effort               list of none / low / medium / high (routing.features)
    system_pattern                 regex searched in the system prompt (use (?i) to ignore case)
    message_pattern                regex searched in the last user message's text
    keys                           list of key prefixes (as the admin shows them, e.g. "jk-AbC12")
    users                          list of usernames
    clients                        list of goose, claude-code, codex, opencode, aider, other
    side_call                      true / false (routing.features.RequestFeatures.side_call)
    max_output_tokens_below        the request sets max output tokens and it is below this

Minimums and maximums are inclusive. Example: {"side_call": true} or
{"min_prompt_tokens": 60000} or {"clients": ["goose"], "max_tools": 0}.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .features import CLIENTS, EFFORTS, RequestFeatures
from .table import KeyInfo, RouteInfo, RuleConditions, RuleInfo

_INTS = ("min_tools", "max_tools", "min_prompt_tokens", "max_prompt_tokens", "max_output_tokens_below")
_BOOLS = ("has_images", "side_call")
_PATTERNS = ("system_pattern", "message_pattern")
_LISTS = {"reasoning_effort": EFFORTS, "keys": None, "users": None, "clients": CLIENTS}
FIELDS = _INTS + _BOOLS + _PATTERNS + tuple(_LISTS)


def parse_conditions(raw: dict | None) -> RuleConditions:
    """Validate and compile. Raises ValueError naming every problem (shown in the admin)."""
    if raw is None:
        return RuleConditions()
    if not isinstance(raw, dict):
        raise ValueError("Conditions must be a JSON object, e.g. {\"side_call\": true}.")
    problems, values = [], {}
    for name, value in raw.items():
        if name not in FIELDS:
            problems.append(f"unknown condition `{name}` (known: {', '.join(FIELDS)})")
        elif value is None:
            continue
        elif name in _INTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(f"`{name}` must be a non-negative integer")
            else:
                values[name] = value
        elif name in _BOOLS:
            if not isinstance(value, bool):
                problems.append(f"`{name}` must be true or false")
            else:
                values[name] = value
        elif name in _PATTERNS:
            if not isinstance(value, str) or not value:
                problems.append(f"`{name}` must be a non-empty regular expression")
                continue
            try:
                values[name] = re.compile(value)
            except re.error as exc:
                problems.append(f"`{name}` is not a valid regular expression: {exc}")
        else:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
                problems.append(f"`{name}` must be a non-empty list of strings")
                continue
            allowed = _LISTS[name]
            if allowed is not None:
                value = [v.lower() for v in value]
                bad = [v for v in value if v not in allowed]
                if bad:
                    problems.append(f"`{name}` has unknown value(s) {', '.join(bad)} (known: {', '.join(allowed)})")
                    continue
            values[name] = tuple(value) if name == "keys" else frozenset(value)
    for low, high in (("min_tools", "max_tools"), ("min_prompt_tokens", "max_prompt_tokens")):
        if low in values and high in values and values[low] > values[high]:
            problems.append(f"`{low}` is greater than `{high}`: the rule could never match")
    if problems:
        raise ValueError("; ".join(problems))
    return RuleConditions(**values)


def check(conditions: RuleConditions, features: RequestFeatures, key: KeyInfo | None) -> str | None:
    """None when every condition holds, else the first one that does not (for explanations).
    Cheap checks first; the regexes and message walks run only when everything else held."""
    c = conditions
    if c.users is not None and (key is None or key.username not in c.users):
        return "users"
    if c.keys is not None and (key is None or not key.prefix.startswith(c.keys)):
        return "keys"
    if c.clients is not None and features.client not in c.clients:
        return "clients"
    if c.min_tools is not None and features.tool_count < c.min_tools:
        return "min_tools"
    if c.max_tools is not None and features.tool_count > c.max_tools:
        return "max_tools"
    if c.reasoning_effort is not None and features.reasoning_effort not in c.reasoning_effort:
        return "reasoning_effort"
    if c.max_output_tokens_below is not None and (features.max_output_tokens is None
                                                  or features.max_output_tokens >= c.max_output_tokens_below):
        return "max_output_tokens_below"
    if c.min_prompt_tokens is not None and features.prompt_tokens < c.min_prompt_tokens:
        return "min_prompt_tokens"
    if c.max_prompt_tokens is not None and features.prompt_tokens > c.max_prompt_tokens:
        return "max_prompt_tokens"
    if c.has_images is not None and features.has_images != c.has_images:
        return "has_images"
    if c.side_call is not None and features.side_call != c.side_call:
        return "side_call"
    if c.system_pattern is not None and c.system_pattern.search(features.system_text) is None:
        return "system_pattern"
    if c.message_pattern is not None and c.message_pattern.search(features.last_user_text) is None:
        return "message_pattern"
    return None


def rule_matches(rule: RuleInfo, features: RequestFeatures, key: KeyInfo | None) -> bool:
    return rule.enabled and check(rule.conditions, features, key) is None


def matching_rules(route: RouteInfo, features: RequestFeatures, key: KeyInfo | None) -> Iterator[RuleInfo]:
    """Enabled rules whose conditions hold, in order (the planner skips one whose target is unusable)."""
    for rule in route.rules:
        if rule_matches(rule, features, key):
            yield rule


def match_rule(route: RouteInfo, features: RequestFeatures, key: KeyInfo | None) -> RuleInfo | None:
    return next(matching_rules(route, features, key), None)


def describe(conditions: RuleConditions) -> str:
    """One line for explanations: `side_call=True, clients=claude-code`."""
    parts = []
    for name in FIELDS:
        value = getattr(conditions, name)
        if value is None:
            continue
        if isinstance(value, re.Pattern):
            value = value.pattern
        elif isinstance(value, (frozenset, tuple)):
            value = ",".join(sorted(value))
        parts.append(f"{name}={value}")
    return ", ".join(parts) or "always"
