"""Rule conditions: parsing, and matching realistic agent requests."""

from __future__ import annotations

import pytest

from routing.rules import check, describe, match_rule, parse_conditions
from routing.table import RuleInfo

from .build import ALICE, BOB, features_of, route

CC_TITLE = "claude-code/02-apikey-sonnet45-nonessential-on/002-v1_messages.json"
CC_MAIN = "claude-code/02-apikey-sonnet45-nonessential-on/004-v1_messages.json"
GOOSE = "goose/openai-chat.json"
CODEX_HIGH = "codex/02-responses-gpt5codex-effort-high/001-v1_responses.json"


def rule(name: str, **conditions) -> RuleInfo:
    return RuleInfo(name, parse_conditions(conditions), target_route="elsewhere")


class TestParsing:
    def test_it_compiles_patterns_and_normalises_lists(self):
        c = parse_conditions({"system_pattern": "(?i)title", "clients": ["Goose"], "reasoning_effort": "high",
                              "keys": ["jk-abc"], "min_tools": 1})
        assert c.system_pattern.search("A TITLE")
        assert c.clients == frozenset({"goose"}) and c.reasoning_effort == frozenset({"high"})
        assert c.keys == ("jk-abc",) and c.min_tools == 1 and c.max_tools is None

    def test_it_names_every_problem(self):
        with pytest.raises(ValueError) as exc:
            parse_conditions({"min_tool": 1, "side_call": "yes", "message_pattern": "(", "clients": ["vim"],
                              "max_prompt_tokens": -1})
        message = str(exc.value)
        for part in ("unknown condition `min_tool`", "`side_call` must be true or false",
                     "`message_pattern` is not a valid regular expression", "unknown value(s) vim",
                     "`max_prompt_tokens` must be a non-negative integer"):
            assert part in message

    def test_an_impossible_range_is_refused(self):
        with pytest.raises(ValueError, match="could never match"):
            parse_conditions({"min_tools": 5, "max_tools": 2})

    def test_empty_conditions_match_everything(self):
        assert check(parse_conditions({}), features_of(GOOSE), ALICE) is None
        assert describe(parse_conditions(None)) == "always"


class TestAgentRequests:
    def test_a_claude_code_title_call_matches_side_call(self):
        side = rule("side-calls", side_call=True)
        assert check(side.conditions, features_of(CC_TITLE), ALICE) is None

    def test_a_goose_request_with_tools_does_not_match_side_call(self):
        side = rule("side-calls", side_call=True)
        assert check(side.conditions, features_of(GOOSE), ALICE) == "side_call"

    def test_a_claude_code_main_call_is_matched_as_hard_work(self):
        hard = rule("hard", clients=["claude-code"], min_tools=10, reasoning_effort=["high"], min_prompt_tokens=20000)
        assert check(hard.conditions, features_of(CC_MAIN), ALICE) is None
        assert check(hard.conditions, features_of(CC_TITLE), ALICE) == "min_tools"

    def test_a_goose_request_is_small_and_from_goose(self):
        easy = rule("easy", clients=["goose"], max_prompt_tokens=3000, max_tools=5)
        assert check(easy.conditions, features_of(GOOSE), ALICE) is None
        assert check(easy.conditions, features_of(CC_MAIN), ALICE) == "clients"

    def test_patterns_search_the_system_prompt_and_the_last_user_message(self):
        goose = features_of(GOOSE)
        assert check(rule("r", system_pattern=r"called goose").conditions, goose, ALICE) is None
        assert check(rule("r", message_pattern=r"(?i)how many lines").conditions, goose, ALICE) is None
        assert check(rule("r", message_pattern=r"refactor").conditions, goose, ALICE) == "message_pattern"

    def test_users_and_key_prefixes(self):
        goose = features_of(GOOSE)
        assert check(rule("r", users=["alice"]).conditions, goose, ALICE) is None
        assert check(rule("r", users=["alice"]).conditions, goose, BOB) == "users"
        assert check(rule("r", keys=["jk-bob"]).conditions, goose, BOB) is None
        assert check(rule("r", keys=["jk-bob"]).conditions, goose, ALICE) == "keys"
        assert check(rule("r", users=["alice"]).conditions, goose, None) == "users"

    def test_max_output_tokens_below_needs_a_limit_in_the_request(self):
        below = rule("r", max_output_tokens_below=20000).conditions
        assert check(below, features_of(GOOSE), ALICE) is None  # 16384
        assert check(below, features_of(CC_MAIN), ALICE) == "max_output_tokens_below"  # 32000
        assert check(below, features_of(CODEX_HIGH), ALICE) == "max_output_tokens_below"  # not set

    def test_images(self):
        assert check(rule("r", has_images=False).conditions, features_of(GOOSE), ALICE) is None
        assert check(rule("r", has_images=True).conditions, features_of(GOOSE), ALICE) == "has_images"


class TestFirstMatch:
    def test_the_first_enabled_matching_rule_wins(self):
        disabled = RuleInfo("off", parse_conditions({}), target_route="x", enabled=False)
        r = route("agents", [("p", "m")], rules=(disabled, rule("no", clients=["codex"]),
                                                  rule("side", side_call=True), rule("all")))
        assert match_rule(r, features_of(CC_TITLE), ALICE).name == "side"
        assert match_rule(r, features_of(GOOSE), ALICE).name == "all"
        assert match_rule(route("plain", [("p", "m")]), features_of(GOOSE), ALICE) is None
