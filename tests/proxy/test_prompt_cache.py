"""Cache breakpoints the gateway places (gateway/proxy/prompt_cache.py), on encoded upstream bodies."""

from __future__ import annotations

import copy

import orjson

from gateway.proxy import prompt_cache as pc
from providers.pricing import Price, Tier

LONG = "word " * 1200  # ~1500 tokens at 4 bytes a token: above the 1024 minimum on its own


def anthropic_body(turns: int, system=LONG, tools=True) -> dict:
    messages = [{"role": "user", "content": "task: fix the tests"}]
    for i in range(turns - 1):
        messages.append({"role": "assistant", "content": [{"type": "tool_use", "id": f"t{i}", "name": "read",
                                                           "input": {"path": f"f{i}.py"}}]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}",
                                                      "content": LONG}]})
    body = {"model": "claude-sonnet-4-5", "max_tokens": 1000, "messages": messages}
    if system:
        body["system"] = system
    if tools:
        body["tools"] = [{"name": "read", "description": LONG, "input_schema": {"type": "object"}}]
    return body


def markers(body: dict) -> list[str]:
    """Where the cache_control markers are: tools, system, m<index>."""
    out = []
    out += ["tools"] * sum(1 for t in body.get("tools") or [] if t.get("cache_control"))
    if isinstance(body.get("system"), list):
        out += ["system"] * sum(1 for b in body["system"] if b.get("cache_control"))
    for i, m in enumerate(body["messages"]):
        if isinstance(m["content"], list):
            out += [f"m{i}"] * sum(1 for b in m["content"] if b.get("cache_control"))
    return out


def place(body, memory=None, session="s1", passthrough=False, fmt="anthropic_messages", ttl="5m",
          model="claude-sonnet-4-5"):
    return pc.place(body, fmt, model, ttl, session, memory or pc.SessionPrefixes(), passthrough)


def test_first_turn_marks_tools_system_and_last_message():
    body = anthropic_body(2)
    assert place(body) == 3
    assert sorted(markers(body)) == ["m2", "system", "tools"]
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}


def test_next_turn_reads_the_previous_last_message_within_four():
    memory = pc.SessionPrefixes()
    first = anthropic_body(2)
    place(first, memory)
    second = anthropic_body(3)  # the same conversation, one tool round later
    assert place(second, memory) == 4
    # m2: the last message the previous request sent (and wrote); m4: this one's last.
    assert sorted(markers(second)) == ["m2", "m4", "system", "tools"]
    third = anthropic_body(4)
    place(third, memory)
    assert sorted(markers(third)) == ["m4", "m6", "system", "tools"]


def test_another_session_does_not_read_this_ones_turns():
    memory = pc.SessionPrefixes()
    place(anthropic_body(2), memory, session="a")
    other = anthropic_body(3)
    place(other, memory, session="b")
    assert "m2" not in markers(other)


def test_short_prefixes_are_not_marked():
    body = anthropic_body(1, system="You are Goose.", tools=False)
    assert place(body) == 0 and markers(body) == []
    # Haiku 3.5 needs 2048 tokens: ~1500 of system is not enough there, is on Sonnet.
    body = anthropic_body(1, tools=False)
    assert place(body, model="claude-3-5-haiku-20241022") == 0
    assert place(anthropic_body(1, tools=False)) == 2


def test_client_markers_kept_and_counted_toward_the_limit():
    body = anthropic_body(3)
    body["system"] = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    body["messages"][1]["content"][0]["cache_control"] = {"type": "ephemeral"}
    body["messages"][0] = {"role": "user", "content": [{"type": "text", "text": "x",
                                                        "cache_control": {"type": "ephemeral"}}]}
    client = copy.deepcopy(body)
    assert place(body) == 1  # 3 of the client's + 1
    assert len(markers(body)) == 4
    assert body["system"] == client["system"]
    assert body["messages"][:2] == client["messages"][:2]


def test_passthrough_with_client_markers_is_untouched_byte_for_byte():
    body = anthropic_body(3)
    body["messages"][2]["content"][0]["cache_control"] = {"type": "ephemeral"}
    before = orjson.dumps(body)
    assert place(body, passthrough=True) == 0
    assert orjson.dumps(body) == before


def test_passthrough_without_markers_leaves_the_client_body_alone():
    client = anthropic_body(2)
    before = orjson.dumps(client)
    body = dict(client)  # what forward.py hands over: a shallow copy
    assert place(body, passthrough=True) == 3
    assert orjson.dumps(client) == before  # copy-on-write: a fallback attempt starts clean


def test_thinking_blocks_are_never_marked():
    body = anthropic_body(2)
    body["messages"].append({"role": "assistant", "content": [
        {"type": "text", "text": "ok"}, {"type": "thinking", "thinking": "hm", "signature": "s"}]})
    place(body)
    last = body["messages"][-1]["content"]
    assert last[0].get("cache_control") and "cache_control" not in last[1]


def test_one_hour_ttl_marker():
    body = anthropic_body(1)
    place(body, ttl="1h")
    assert body["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_bedrock_cache_points_follow_the_blocks():
    body = {"messages": [{"role": "user", "content": [{"text": LONG}]}],
            "system": [{"text": LONG}],
            "toolConfig": {"tools": [{"toolSpec": {"name": "read", "description": LONG,
                                                   "inputSchema": {"json": {"type": "object"}}}}]}}
    assert place(body, fmt="bedrock_converse", model="us.anthropic.claude-sonnet-4-5-v1:0") == 3
    assert body["system"][-1] == {"cachePoint": {"type": "default"}}
    assert body["toolConfig"]["tools"][-1] == {"cachePoint": {"type": "default"}}
    assert body["messages"][0]["content"] == [{"text": LONG}, {"cachePoint": {"type": "default"}}]


def test_applies_per_format_and_route():
    class Route:
        prompt_cache, prompt_cache_passthrough = True, False

    assert pc.applies("anthropic_messages", "claude-sonnet-4-5", False, None)
    assert not pc.applies("anthropic_messages", "claude-sonnet-4-5", True, None)
    assert not pc.applies("anthropic_messages", "claude-sonnet-4-5", True, Route())
    Route.prompt_cache_passthrough = True
    assert pc.applies("anthropic_messages", "claude-sonnet-4-5", True, Route())
    Route.prompt_cache = False
    assert not pc.applies("anthropic_messages", "claude-sonnet-4-5", False, Route())
    assert not pc.applies("openai_chat", "gpt-4o", False, None)
    assert not pc.applies("bedrock_converse", "amazon.nova-pro-v1:0", False, None)


def test_one_hour_price_doubles_the_write_rate():
    price = Price(3.0, 15.0, 0.3, 3.75, tiers=(Tier(200_000, 6.0, 22.5, 0.6, 7.5),))
    hour = pc.one_hour_price(price)
    assert hour.cache_write == 6.0 and hour.cache_read == 0.3 and hour.tiers[0].cache_write == 12.0
    assert hour.cost(100_000, 0, 0, 100_000) == 0.6  # 100K written at 2 x 3.0 per 1M


def test_prompt_cache_key_kept_or_taken_from_the_session():
    body = {}
    pc.prompt_cache_key(body, {"prompt_cache_key": "codex-123"}, "sess")
    assert body["prompt_cache_key"] == "codex-123"
    body = {}
    pc.prompt_cache_key(body, {}, "sess")
    assert body["prompt_cache_key"] == "sess"
    body = {}
    pc.prompt_cache_key(body, {}, "")
    assert body == {}
