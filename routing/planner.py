"""From a requested model and the request's features to an ordered, explained
candidate chain. Pure: no Django, no I/O (reads the config snapshot and the
in-process RuntimeStats).

    resolve (routing.router) → first matching rule whose target is usable
    → strategy order (unusable targets last) → context-window filter
    → session affinity (sticky target first while usable)

One level of rules: a rule that sends requests to another route does not run
that route's rules (no loops, and the explanation stays short).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .features import RequestFeatures
from .router import Candidate, Plan, resolve
from .rules import describe, matching_rules
from .stats import RuntimeStats, target_of
from .strategies import healthy_first, order_candidates, usable
from .table import ConfigSnapshot, KeyInfo, RuleInfo, TargetInfo

_rng = random.Random()


@dataclass(slots=True)
class RoutingDecision:
    """What plan_request decided and why.

    plan         the Plan to hand to Exchange.run: plan.route is the route that
                 served (a rule's target route when one applied), plan.reason how
                 the model name resolved ("route", "default", "provider", "pair",
                 "model") with ", rule" appended when a rule applied
    rule         name of the rule that applied, or None
    strategy     strategy used to order the candidates
    explanation  human-readable lines (route tester, logs, usage record)
    affinity_key session-affinity key (session id + route + rule), "" when
                 affinity is off or the client sent no session id: on success call
                 stats.stick(decision.affinity_key, candidate)
    context_window_fallback  whether a context-length error may retry on
                 larger_context_candidates()
    requested_route  the route the model name resolved to, before any rule
    hosted_tools the serving route's hosted-tools policy (map | drop | refuse)
    """

    plan: Plan
    rule: str | None
    strategy: str
    explanation: list[str] = field(default_factory=list)
    affinity_key: str = ""
    context_window_fallback: bool = True
    requested_route: str = ""
    hosted_tools: str = "map"

    def chain(self) -> str:
        return " > ".join(f"{c.provider.name}/{c.model}" for c in self.plan.candidates)

    def summary(self) -> str:
        """Short form for a response header: `route=fast;rule=side-calls;strategy=weighted`."""
        parts = [f"route={self.plan.route}"]
        if self.rule:
            parts.append(f"rule={self.rule}")
        parts.append(f"strategy={self.strategy}")
        return ";".join(parts)


def plan_request(snapshot: ConfigSnapshot, model: str, key: KeyInfo | None, features: RequestFeatures,
                 stats: RuntimeStats, rng: random.Random | None = None, now: float | None = None, *,
                 explain: bool = True) -> RoutingDecision:
    """Raises routing.router.ResolutionError as resolve() does. explain=False leaves the
    explanation empty (it is about half the cost) when nothing will show it."""
    rng = rng or _rng
    now = stats.clock() if now is None else now
    health = snapshot.health
    plan = resolve(snapshot, model, key)
    route = snapshot.routes.get(plan.route) if plan.reason in ("route", "default") else None
    notes: list[str] = []
    if explain:
        notes.append(f"`{model}` resolved to {plan.route} ({plan.reason})")

    rule, serving, pinned, candidates = None, route, None, plan.candidates
    if route is not None and route.rules:
        for matched in matching_rules(route, features, key):
            problem, target_route, target = _rule_target(snapshot, matched, key)
            if problem:
                if explain:
                    notes.append(f"rule {matched.name} matched ({describe(matched.conditions)}) but was skipped: "
                                 f"{problem}")
                continue
            rule = matched
            if target_route is not None:
                serving, candidates = target_route, _candidates(snapshot, target_route.targets)
            else:
                pinned = target
                candidates = [target] + [c for c in plan.candidates if target_of(c) != target_of(target)]
            if explain:
                notes.append(f"rule {rule.name} matched ({describe(rule.conditions)})")
                notes.append(f"rule sends the request to route {target_route.name}" if target_route is not None
                             else f"rule sends the request to {target.provider.name}/{target.model} first, "
                                  f"route {route.name}'s targets as fallback")
            break
        else:
            if explain:
                notes.append("no rule matched")

    strategy = serving.strategy if serving is not None else "priority"
    weights = _weights(serving.targets) if serving is not None else {}
    if pinned is not None:
        rest = order_candidates(strategy, candidates[1:], stats, rng=rng, health=health, weights=weights,
                                probe_latency=snapshot.health_latency_ms, now=now)
        good, bad = healthy_first([pinned] + rest, stats, health, now)  # the pin still yields to health
        ordered = good + bad
    else:
        ordered = order_candidates(strategy, candidates, stats, rng=rng, health=health, weights=weights,
                                   probe_latency=snapshot.health_latency_ms, now=now)
    if explain:
        for c in ordered:
            if not usable(c, stats, health, now):
                why = "provider health is down" if health.get(c.provider.name) == "down" \
                    else f"circuit {stats.state(target_of(c), now)}"
                notes.append(f"{c.provider.name}/{c.model} moved last: {why}")
        notes.append(f"strategy {strategy}")

    window_aware = serving.context_window_fallback if serving is not None else True
    if window_aware:
        ordered = _fit_context(ordered, features.prompt_tokens, notes if explain else None)

    route_name = serving.name if serving is not None else plan.route
    affinity_key = ""
    if (serving.session_affinity if serving is not None else True) and features.session_id:
        # Scoped by route and rule: a side call sent to a small model must not pull the main calls there.
        affinity_key = f"{features.session_id}\x00{route_name}\x00{rule.name if rule else ''}"
        sticky = stats.sticky(affinity_key, now)
        if sticky is not None:
            index = next((i for i, c in enumerate(ordered) if target_of(c) == sticky), None)
            if index is None:
                outcome = "is no longer a candidate"
            elif not usable(ordered[index], stats, health, now):
                outcome = "is unavailable, not kept first"  # affinity never blocks failover
            else:
                ordered.insert(0, ordered.pop(index))
                outcome = "first"
            if explain:
                notes.append(f"session affinity: {sticky[0]}/{sticky[1]} {outcome}")

    reason = plan.reason + (", rule" if rule else "")
    return RoutingDecision(Plan(route_name, ordered, reason), rule.name if rule else None, strategy, notes,
                           affinity_key, window_aware, plan.route,
                           serving.hosted_tools if serving is not None else "map")


def larger_context_candidates(snapshot: ConfigSnapshot, plan: Plan, failed: Candidate) -> list[Candidate]:
    """After a context-length error on `failed`: candidates from the plan, its route and
    the global fallback whose context window is known and larger than the failed one's
    (any known window when the failed one's is unknown), smallest sufficient first
    (cheaper, and each failure is a fast 400)."""
    failed_window = _window(failed)
    pool = list(plan.candidates)
    route = snapshot.routes.get(plan.route)
    if route is not None:
        pool += _candidates(snapshot, route.targets)
    pool += _candidates(snapshot, snapshot.fallback)
    seen = {target_of(failed)}
    out = []
    for c in pool:
        key = target_of(c)
        window = _window(c)
        if key in seen or window is None or (failed_window is not None and window <= failed_window):
            continue
        seen.add(key)
        out.append(c)
    out.sort(key=_window)
    return out


# ---------------------------------------------------------------------- helpers

def _rule_target(snapshot: ConfigSnapshot, rule: RuleInfo, key: KeyInfo | None):
    """(problem, target route, pinned candidate); problem is None when usable."""
    if rule.target_route:
        target = snapshot.routes.get(rule.target_route)
        if target is None:
            return f"target route {rule.target_route} is disabled or missing", None, None
        if key is not None and key.allowed_routes is not None and target.name not in key.allowed_routes:
            return f"the key may not use route {target.name}", None, None
        if not _candidates(snapshot, target.targets):
            return f"target route {target.name} has no enabled target", None, None
        return None, target, None
    if rule.target_provider:
        provider = snapshot.providers.get(rule.target_provider)
        if provider is None:
            return f"provider {rule.target_provider} is disabled or missing", None, None
        model = rule.target_model or provider.default_model
        if not model:
            return f"no model given and provider {provider.name} has no default model", None, None
        return None, None, Candidate(provider, model)
    return "the rule has no target", None, None


def _candidates(snapshot: ConfigSnapshot, targets: tuple[TargetInfo, ...]) -> list[Candidate]:
    out = []
    for t in targets:
        provider = snapshot.providers.get(t.provider)
        if provider is not None and t.model:
            out.append(Candidate(provider, t.model))
    return out


def _weights(targets: tuple[TargetInfo, ...]) -> dict[tuple[str, str], int]:
    weights: dict[tuple[str, str], int] = {}
    for t in targets:
        weights[(t.provider, t.model)] = weights.get((t.provider, t.model), 0) + t.weight
    return weights


def _window(candidate: Candidate) -> int | None:
    info = candidate.provider.models.get(candidate.model)
    return None if info is None else info.context_window


def _fit_context(candidates: list[Candidate], prompt_tokens: int,
                 notes: list[str] | None) -> list[Candidate]:
    fits, too_small = [], []
    for c in candidates:
        window = _window(c)
        (too_small if window is not None and window < prompt_tokens else fits).append(c)
    if not too_small:
        return candidates
    if not fits:
        # Nothing holds it: the largest fails fastest with a context error the agent acts on (compaction).
        largest = max(candidates, key=lambda c: _window(c) or 0)
        if notes is not None:
            notes.append(f"no target's context window holds ~{prompt_tokens} prompt tokens: kept only the "
                         f"largest, {largest.provider.name}/{largest.model} ({_window(largest)})")
        return [largest]
    if notes is not None:
        for c in too_small:
            notes.append(f"skipped {c.provider.name}/{c.model}: context window {_window(c)} < "
                         f"~{prompt_tokens} prompt tokens")
    return fits
