"""Snapshot builders and capture loaders for the pure routing tests (no Django)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from routing.features import extract_features
from routing.router import Candidate
from providers.config import ModelInfo, ProviderInfo
from routing.table import ConfigSnapshot, KeyInfo, RouteInfo, RuleInfo, TargetInfo

AGENTS = Path(__file__).resolve().parents[1] / "fixtures" / "agents"  # inside the repo
FORMATS = {"v1_messages": "anthropic_messages", "v1_chat_completions": "openai_chat",
           "v1_responses": "openai_responses"}

ALICE = KeyInfo(id=1, user_id=1, username="alice", prefix="jk-alice00")
BOB = KeyInfo(id=2, user_id=2, username="bob", prefix="jk-bob0000", allowed_routes=frozenset({"agents"}))


def provider(name: str, type: str = "openai", models: dict[str, tuple[int | None, float, float]] | None = None,
             default_model: str = "") -> ProviderInfo:
    """models: {model_id: (context_window, input_price, output_price)}"""
    infos = {m: ModelInfo(m, window, input_price=i, output_price=o) for m, (window, i, o) in (models or {}).items()}
    return ProviderInfo(name=name, type=type, base_url=f"http://{name}.invalid/v1", default_model=default_model,
                        models=infos)


def snapshot(providers: list[ProviderInfo], routes: list[RouteInfo], *, health: dict | None = None,
             default_route: str | None = None, fallback: tuple[TargetInfo, ...] = ()) -> ConfigSnapshot:
    index: dict[str, list[str]] = {}
    for p in providers:
        for m in p.models:
            index.setdefault(m, []).append(p.name)
    return ConfigSnapshot(version=1, providers={p.name: p for p in providers}, routes={r.name: r for r in routes},
                          keys={}, default_route=default_route, fallback=fallback,
                          model_index={k: tuple(v) for k, v in index.items()}, health=health or {})


def route(name: str, targets: list[tuple[str, str] | tuple[str, str, int]], strategy: str = "priority",
          rules: tuple[RuleInfo, ...] = (), **flags) -> RouteInfo:
    return RouteInfo(name, strategy, tuple(TargetInfo(*t) for t in targets), rules=rules, **flags)


def candidates(snap: ConfigSnapshot, pairs: list[tuple[str, str]]) -> list[Candidate]:
    return [Candidate(snap.providers[p], m) for p, m in pairs]


def names(cands) -> list[str]:
    return [f"{c.provider.name}/{c.model}" for c in cands]


def capture(relative: str):
    """(format, body, headers, raw) from a capture file under tests/fixtures/agents/."""
    path = AGENTS / relative
    data = json.loads(path.read_text())
    if relative.startswith("goose/"):
        kind = path.stem
        fmt = {"openai-chat": "openai_chat", "anthropic-messages": "anthropic_messages", "ollama-chat": "ollama"}[kind]
        headers = json.loads((AGENTS / "goose" / f"headers-{kind}.json").read_text())["headers"]
        body = data
    else:
        fmt = next(v for k, v in FORMATS.items() if k in path.name)
        headers, body = data["headers"], data["body"]
    headers = {k.lower().encode(): str(v).encode() for k, v in headers.items()}
    return fmt, body, headers, orjson.dumps(body)


def features_of(relative: str, **overrides):
    fmt, body, headers, raw = capture(relative)
    body = {**body, **overrides}
    return extract_features(fmt, body, headers, raw=orjson.dumps(body) if overrides else raw)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
