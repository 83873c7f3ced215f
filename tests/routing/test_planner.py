"""plan_request: rules, allow-lists, strategy, context windows, session affinity."""

from __future__ import annotations

import random

import pytest

from routing.planner import larger_context_candidates, plan_request
from routing.router import Candidate, ResolutionError
from routing.rules import parse_conditions
from routing.stats import RuntimeStats
from routing.table import KeyInfo, RuleInfo, TargetInfo

from .build import ALICE, BOB, Clock, features_of, names, provider, route, snapshot

CC_TITLE = "claude-code/02-apikey-sonnet45-nonessential-on/002-v1_messages.json"
CC_MAIN = "claude-code/02-apikey-sonnet45-nonessential-on/004-v1_messages.json"  # ~31k tokens
GOOSE = "goose/openai-chat.json"  # ~600 tokens

PROVIDERS = [provider("local", "ollama", {"qwen": (8192, 0.0, 0.0)}, default_model="qwen"),
             provider("cheap", models={"mini": (128000, 0.15, 0.6)}),
             provider("strong", "anthropic", {"sonnet": (200000, 3.0, 15.0), "haiku": (200000, 1.0, 5.0)}),
             provider("huge", models={"long": (1000000, 2.0, 8.0)})]


def side_rule(**kw) -> RuleInfo:
    return RuleInfo("side-calls", parse_conditions({"side_call": True}), **kw)


def plan(snap, model="agents", key=ALICE, rel=GOOSE, stats=None, **overrides):
    return plan_request(snap, model, key, features_of(rel, **overrides), stats or RuntimeStats(clock=Clock()),
                        rng=random.Random(0))


@pytest.fixture
def stats():
    return RuntimeStats(clock=Clock())


class TestRules:
    def test_a_side_call_goes_to_the_rule_s_provider_first_with_the_route_as_fallback(self):
        snap = snapshot(PROVIDERS, [route("agents", [("strong", "sonnet"), ("cheap", "mini")],
                                          rules=(side_rule(target_provider="strong", target_model="haiku"),))])
        decision = plan(snap, rel=CC_TITLE)
        assert decision.rule == "side-calls"
        assert names(decision.plan.candidates) == ["strong/haiku", "strong/sonnet", "cheap/mini"]
        assert decision.plan.route == "agents" and decision.plan.reason == "route, rule"

    def test_a_main_call_does_not_match_and_keeps_the_route(self):
        snap = snapshot(PROVIDERS, [route("agents", [("strong", "sonnet"), ("cheap", "mini")],
                                          rules=(side_rule(target_provider="strong", target_model="haiku"),))])
        decision = plan(snap, rel=CC_MAIN)
        assert decision.rule is None and "no rule matched" in decision.explanation
        assert names(decision.plan.candidates) == ["strong/sonnet", "cheap/mini"]

    def test_a_rule_can_send_requests_to_another_route_with_its_strategy(self):
        snap = snapshot(PROVIDERS, [route("agents", [("strong", "sonnet")], rules=(side_rule(target_route="fast"),)),
                                    route("fast", [("strong", "haiku"), ("cheap", "mini")], strategy="cost")])
        decision = plan(snap, rel=CC_TITLE)
        assert decision.plan.route == "fast" and decision.requested_route == "agents"
        assert decision.strategy == "cost"
        assert names(decision.plan.candidates) == ["cheap/mini", "strong/haiku"]
        assert decision.summary() == "route=fast;rule=side-calls;strategy=cost"

    def test_a_rule_may_not_escape_the_key_s_allow_list(self):
        snap = snapshot(PROVIDERS, [route("agents", [("strong", "sonnet")],
                                          rules=(side_rule(target_route="fast"),
                                                 RuleInfo("any-side", parse_conditions({"side_call": True}),
                                                          target_provider="cheap", target_model="mini"))),
                                    route("fast", [("strong", "haiku")])])
        decision = plan(snap, key=BOB, rel=CC_TITLE)  # Bob may use `agents` only
        assert decision.rule == "any-side"
        assert any("skipped: the key may not use route fast" in line for line in decision.explanation)
        assert names(decision.plan.candidates) == ["cheap/mini", "strong/sonnet"]
        # Alice has no allow-list: the first rule applies.
        assert plan(snap, key=ALICE, rel=CC_TITLE).plan.route == "fast"

    def test_the_requested_route_itself_is_still_checked_against_the_allow_list(self):
        snap = snapshot(PROVIDERS, [route("agents", [("strong", "sonnet")]), route("fast", [("strong", "haiku")])])
        with pytest.raises(ResolutionError) as exc:
            plan(snap, model="fast", key=BOB)
        assert exc.value.status == 403

    def test_a_rule_whose_target_is_disabled_is_skipped(self):
        snap = snapshot(PROVIDERS, [route("agents", [("strong", "sonnet")],
                                          rules=(side_rule(target_provider="gone", target_model="x"),
                                                 side_rule(target_route="missing")))])
        decision = plan(snap, rel=CC_TITLE)
        assert decision.rule is None
        assert names(decision.plan.candidates) == ["strong/sonnet"]

    def test_the_pinned_target_still_yields_to_an_open_circuit(self, stats):
        snap = snapshot(PROVIDERS, [route("agents", [("strong", "sonnet"), ("cheap", "mini")],
                                          rules=(side_rule(target_provider="local"),))])
        for _ in range(5):
            stats.end(stats.begin(("local", "qwen")), ok=False)
        decision = plan(snap, rel=CC_TITLE, stats=stats)
        assert names(decision.plan.candidates) == ["strong/sonnet", "cheap/mini", "local/qwen"]
        assert any("local/qwen moved last: circuit open" in line for line in decision.explanation)

    def test_rules_apply_to_the_default_route_but_not_to_direct_provider_names(self):
        snap = snapshot(PROVIDERS, [route("default", [("strong", "sonnet")],
                                          rules=(side_rule(target_provider="cheap", target_model="mini"),))],
                        default_route="default")
        assert plan(snap, model="whatever", rel=CC_TITLE).rule == "side-calls"
        direct = plan(snap, model="strong/sonnet", rel=CC_TITLE)
        assert direct.rule is None and names(direct.plan.candidates) == ["strong/sonnet"]


class TestStrategyAndHealth:
    def test_the_route_strategy_orders_the_candidates(self):
        snap = snapshot(PROVIDERS, [route("agents", [("strong", "sonnet"), ("cheap", "mini")], strategy="cost")])
        assert names(plan(snap).plan.candidates) == ["cheap/mini", "strong/sonnet"]

    def test_a_provider_down_in_the_snapshot_goes_last(self):
        snap = snapshot(PROVIDERS, [route("agents", [("strong", "sonnet"), ("cheap", "mini")])],
                        health={"strong": "down"})
        decision = plan(snap)
        assert names(decision.plan.candidates) == ["cheap/mini", "strong/sonnet"]
        assert any("provider health is down" in line for line in decision.explanation)


class TestContextWindow:
    def test_targets_too_small_for_the_prompt_are_skipped(self):
        snap = snapshot(PROVIDERS, [route("agents", [("local", "qwen"), ("strong", "sonnet")])])
        decision = plan(snap, rel=CC_MAIN)  # ~31k tokens > 8192
        assert names(decision.plan.candidates) == ["strong/sonnet"]
        assert any("skipped local/qwen: context window 8192" in line for line in decision.explanation)
        assert names(plan(snap, rel=GOOSE).plan.candidates) == ["local/qwen", "strong/sonnet"]

    def test_when_nothing_fits_the_largest_is_kept(self):
        snap = snapshot(PROVIDERS, [route("agents", [("local", "qwen"), ("cheap", "mini")])])
        big = [{"role": "user", "content": "x" * 600_000}]
        decision = plan(snap, messages=big)  # ~150k tokens: neither 8k nor 128k holds it
        assert names(decision.plan.candidates) == ["cheap/mini"]

    def test_unknown_windows_are_kept(self):
        snap = snapshot(PROVIDERS + [provider("byo")], [route("agents", [("local", "qwen"), ("byo", "m")])])
        assert names(plan(snap, rel=CC_MAIN).plan.candidates) == ["byo/m"]

    def test_it_can_be_switched_off_per_route(self):
        snap = snapshot(PROVIDERS, [route("agents", [("local", "qwen"), ("strong", "sonnet")],
                                          context_window_fallback=False)])
        decision = plan(snap, rel=CC_MAIN)
        assert names(decision.plan.candidates) == ["local/qwen", "strong/sonnet"]
        assert not decision.context_window_fallback

    def test_larger_context_candidates_after_a_context_length_error(self):
        snap = snapshot(PROVIDERS + [provider("byo")],
                        [route("agents", [("local", "qwen"), ("cheap", "mini"), ("byo", "m"), ("strong", "sonnet")])],
                        fallback=(TargetInfo("huge", "long"),))
        decision = plan(snap)
        failed = decision.plan.candidates[0]
        assert names([failed]) == ["local/qwen"]
        larger = larger_context_candidates(snap, decision.plan, failed)
        assert names(larger) == ["cheap/mini", "strong/sonnet", "huge/long"]  # smallest sufficient first
        assert names(larger_context_candidates(snap, decision.plan, Candidate(snap.providers["strong"], "sonnet"))) \
            == ["huge/long"]


class TestSessionAffinity:
    def test_a_session_stays_on_the_target_that_answered_it(self, stats):
        snap = snapshot(PROVIDERS, [route("agents", [("strong", "sonnet"), ("cheap", "mini")], strategy="weighted")])
        first = plan(snap, stats=stats)
        assert first.affinity_key.startswith("20260422_1")
        stats.stick(first.affinity_key, Candidate(snap.providers["cheap"], "mini"))
        for seed in range(20):
            decision = plan_request(snap, "agents", ALICE, features_of(GOOSE), stats, rng=random.Random(seed))
            assert names(decision.plan.candidates)[0] == "cheap/mini"
        assert "session affinity: cheap/mini first" in decision.explanation

    def test_affinity_never_blocks_failover(self, stats):
        snap = snapshot(PROVIDERS, [route("agents", [("strong", "sonnet"), ("cheap", "mini")])])
        key = plan(snap, stats=stats).affinity_key
        stats.stick(key, ("cheap", "mini"))
        for _ in range(5):
            stats.end(stats.begin(("cheap", "mini")), ok=False, status=503)
        decision = plan(snap, stats=stats)
        assert names(decision.plan.candidates) == ["strong/sonnet", "cheap/mini"]
        assert "session affinity: cheap/mini is unavailable, not kept first" in decision.explanation

    def test_affinity_is_scoped_to_the_route_and_rule(self, stats):
        # A side call that went to the cheap model must not drag the main calls there.
        snap = snapshot(PROVIDERS, [route("agents", [("strong", "sonnet"), ("cheap", "mini")],
                                          rules=(side_rule(target_provider="cheap", target_model="mini"),))])
        side = plan(snap, rel=CC_TITLE, stats=stats)
        stats.stick(side.affinity_key, side.plan.candidates[0])
        main = plan(snap, rel=CC_MAIN, stats=stats)
        assert main.affinity_key != side.affinity_key
        assert names(main.plan.candidates)[0] == "strong/sonnet"

    def test_affinity_can_be_switched_off_per_route(self, stats):
        snap = snapshot(PROVIDERS, [route("agents", [("strong", "sonnet"), ("cheap", "mini")],
                                          session_affinity=False)])
        decision = plan(snap, stats=stats)
        assert decision.affinity_key == ""

    def test_no_session_header_no_affinity(self, stats):
        snap = snapshot(PROVIDERS, [route("agents", [("strong", "sonnet")])])
        aider = "aider/02-openai-gpt4o-edit-file/001-v1_chat_completions.json"
        assert plan(snap, rel=aider, stats=stats).affinity_key == ""


def test_a_decision_reads_as_a_chain():
    snap = snapshot(PROVIDERS, [route("agents", [("strong", "sonnet"), ("cheap", "mini")])])
    decision = plan(snap, key=KeyInfo(id=None, user_id=None, username="anonymous", prefix="anonymous"))
    assert decision.chain() == "strong/sonnet > cheap/mini"
    assert decision.explanation[0] == "`agents` resolved to agents (route)"
