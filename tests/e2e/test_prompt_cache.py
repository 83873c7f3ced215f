"""Prompt caching by the gateway, measured against the Anthropic fake's faithful prefix
cache (it reports cache reads/writes only for prefixes a request marked)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import anthropic
import httpx
import pytest

from . import world

GOOSE = Path(__file__).resolve().parents[1] / "fixtures" / "agents" / "goose"
MODEL = "claude-sonnet-4-5-20250929"
RUST = "".join(f"    let value_{i} = compute(input, {i}); // step {i} of the pipeline\n" for i in range(60))


@pytest.fixture
def alice():
    return world.alice_key()


@pytest.fixture
def claude(fake_anthropic):
    p = world.provider(fake_anthropic.url, type="anthropic", model=MODEL)
    world.price(p, MODEL, 3.0, 15.0, cache_read_price=0.3, cache_write_price=3.75)
    return p


def goose_turns(rounds: int) -> list[list[dict]]:
    """Goose's captured conversation (system, user, tree call and its result) carried on
    for `rounds` more tool rounds reading files: the messages of each successive request."""
    body = json.loads((GOOSE / "openai-chat.json").read_text())
    messages = body["messages"][:2]
    turns = [list(messages)]
    messages = body["messages"][:4]
    turns.append(list(messages))
    for i in range(rounds):
        call = f"call_read{i:02d}"
        messages += [{"role": "assistant", "content": None, "tool_calls": [
                         {"id": call, "type": "function", "function": {
                             "name": "tree", "arguments": json.dumps({"path": f"src/mod{i}.rs"})}}]},
                     {"role": "tool", "tool_call_id": call, "content": f"// src/mod{i}.rs\n" + RUST}]
        turns.append(list(messages))
    return turns


def post_goose(gateway, key: str, route: str, messages: list[dict], session: str) -> httpx.Response:
    body = json.loads((GOOSE / "openai-chat.json").read_text())
    body.update(model=route, messages=messages, stream=False)
    body.pop("stream_options", None)
    return httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {key}", "agent-session-id": session})


def play_goose(gateway, key: str, route: str, session: str, turns: int = 4) -> tuple[list, list]:
    """Replay a Goose-shaped conversation: each turn's cached share of the prompt and request id."""
    shares, ids = [], []
    for messages in goose_turns(turns):
        r = post_goose(gateway, key, route, messages, session)
        assert r.status_code == 200, r.text
        usage = r.json()["usage"]
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        shares.append(cached / usage["prompt_tokens"])
        ids.append(r.headers["x-request-id"])
    return shares, ids


def test_goose_conversation_cached_share_rises_turn_by_turn(gateway, alice, claude, fake_anthropic):
    route = world.unique("goose-claude")
    world.route(route, [(claude, MODEL)])
    session = "goose-" + uuid.uuid4().hex[:8]
    shares, ids = play_goose(gateway, alice, route, session)
    sent = [rec.body for rec in fake_anthropic.requests]
    assert all(sum(1 for b in _blocks(body) if b.get("cache_control")) <= 4 for body in sent)
    print(shares, [[i for i, b in enumerate(_blocks(body)) if b.get("cache_control")] for body in sent])
    # Tools and system (~500 tokens) are below the 1024-token minimum on their own: not marked.
    assert not any(b.get("cache_control") for b in sent[0].get("tools") + sent[0]["system"])
    # The first turns are below the 1024-token minimum with what they add; from then on the
    # share read from the cache rises every turn.
    assert shares[0] == 0
    rising = [s for s in shares if s > 0]
    assert len(rising) >= 3 and rising == sorted(rising) and len(set(rising)) == len(rising), shares
    assert shares[-1] > 0.7, shares
    last = world.wait_record(ids[-1])
    assert last.cached_tokens > 0
    expected = (3.0 * (last.prompt_tokens - last.cached_tokens - last.cache_write_tokens)
                + 0.3 * last.cached_tokens + 3.75 * last.cache_write_tokens
                + 15.0 * last.completion_tokens) / 1e6
    assert float(last.cost_usd) == pytest.approx(expected, abs=1e-7)
    # What the cache saved against the uncached input price is recorded with it (reports sum it).
    saved = (2.7 * last.cached_tokens - 0.75 * last.cache_write_tokens) / 1e6
    assert float(last.cache_saved_usd) == pytest.approx(saved, abs=1e-7) and saved > 0
    assert last.attempt_chain[0]["cache_breakpoints"] >= 2


def test_route_switch_off_sends_no_markers(gateway, alice, claude, fake_anthropic):
    route = world.unique("nocache")
    r = world.route(route, [(claude, MODEL)])
    r.prompt_cache = False
    r.save()
    for messages in goose_turns(2):
        assert post_goose(gateway, alice, route, messages, "s-off").status_code == 200
    assert not any(b.get("cache_control") for rec in fake_anthropic.requests for b in _blocks(rec.body))


def test_one_hour_ttl_marked_and_priced(gateway, alice, claude, fake_anthropic):
    route = world.unique("hour")
    r = world.route(route, [(claude, MODEL)])
    r.prompt_cache_ttl = "1h"
    r.save()
    turns = goose_turns(3)
    resp = post_goose(gateway, alice, route, turns[-1], "s-hour-" + uuid.uuid4().hex[:6])
    assert resp.status_code == 200
    markers = [b["cache_control"] for b in _blocks(fake_anthropic.last().body) if b.get("cache_control")]
    assert markers and all(m == {"type": "ephemeral", "ttl": "1h"} for m in markers)
    rec = world.wait_record(resp.headers["x-request-id"])
    assert rec.cache_write_tokens > 0
    expected = (3.0 * (rec.prompt_tokens - rec.cached_tokens - rec.cache_write_tokens)
                + 0.3 * rec.cached_tokens + 6.0 * rec.cache_write_tokens + 15.0 * rec.completion_tokens) / 1e6
    assert float(rec.cost_usd) == pytest.approx(expected, abs=1e-7)
    # One-hour writes cost twice the input price: the "saving" of a first write is negative.
    saved = (2.7 * rec.cached_tokens - 3.0 * rec.cache_write_tokens) / 1e6
    assert float(rec.cache_saved_usd) == pytest.approx(saved, abs=1e-7)


def _anthropic_conversation(markers: bool) -> dict:
    system = [{"type": "text", "text": "You are a coding agent. " + RUST * 2}]
    if markers:
        system[0]["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
    return {"system": system, "max_tokens": 200,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Read main.rs"}]}]}


def test_passthrough_client_markers_untouched(gateway, alice, claude, fake_anthropic):
    route = world.unique("pass")
    r = world.route(route, [(claude, MODEL)])
    r.prompt_cache_passthrough = True
    r.save()
    client = anthropic.Anthropic(base_url=gateway.url, api_key=alice, max_retries=0)
    conversation = _anthropic_conversation(markers=True)
    client.messages.create(model=route, **conversation)
    sent = fake_anthropic.last().body
    assert sent["system"] == conversation["system"] and sent["messages"] == conversation["messages"]
    assert b'"cache_control":{"type":"ephemeral","ttl":"1h"}' in fake_anthropic.last().raw


def test_passthrough_markers_only_when_the_route_enables_them(gateway, alice, claude, fake_anthropic):
    route = world.unique("pass-off")
    r = world.route(route, [(claude, MODEL)])
    client = anthropic.Anthropic(base_url=gateway.url, api_key=alice, max_retries=0)
    client.messages.create(model=route, **_anthropic_conversation(markers=False))
    assert not any(b.get("cache_control") for b in _blocks(fake_anthropic.last().body))
    r.prompt_cache_passthrough = True
    r.save()
    first = client.messages.create(model=route, **_anthropic_conversation(markers=False))
    assert any(b.get("cache_control") for b in _blocks(fake_anthropic.last().body))
    assert first.usage.cache_creation_input_tokens > 0
    again = client.messages.create(model=route, **_anthropic_conversation(markers=False))
    assert again.usage.cache_read_input_tokens > 0


def _blocks(body: dict) -> list[dict]:
    out = list(body.get("tools") or [])
    system = body.get("system")
    out += system if isinstance(system, list) else []
    for m in body.get("messages") or []:
        out += m["content"] if isinstance(m.get("content"), list) else []
    return [b for b in out if isinstance(b, dict)]


def test_config_file_keys_round_trip_and_are_validated(fake_anthropic):
    from gateway.config_file import ConfigError, export_config, import_config
    from routing.models import Route

    name = world.unique("cfg-cache")
    provider = {"name": world.unique("cfg-claude"), "type": "anthropic", "base_url": fake_anthropic.url,
                "model": MODEL, "api_key": "sk-x"}
    spec = {"name": name, "targets": [provider["name"]], "prompt_cache_ttl": "1h",
            "prompt_cache_passthrough": True, "response_cache": True, "response_cache_ttl": 60,
            "response_cache_max_entries": 10}
    import_config({"providers": [provider], "routes": [spec]})
    route = Route.objects.get(name=name)
    assert (route.prompt_cache, route.prompt_cache_passthrough, route.prompt_cache_ttl) == (True, True, "1h")
    assert (route.response_cache, route.response_cache_ttl) == (True, 60)
    assert route.response_cache_max_entries == 10
    exported = next(r for r in export_config()["routes"] if r["name"] == name)
    assert {k: v for k, v in exported.items() if k.startswith(("prompt_", "response_"))} == {
        "prompt_cache_ttl": "1h", "prompt_cache_passthrough": True, "response_cache": True,
        "response_cache_ttl": 60, "response_cache_max_entries": 10}
    with pytest.raises(ConfigError, match="prompt_cache_ttl"):
        import_config({"routes": [dict(spec, prompt_cache_ttl="2h")]})


def test_bedrock_claude_gets_cache_points_it_accepts(gateway, alice, fake_bedrock):
    from tests.fakes import bedrock as fake_bedrock_module

    p = world.provider(fake_bedrock.url, type="bedrock", api_key="", region=fake_bedrock_module.REGION,
                       aws_access_key_id=fake_bedrock_module.ACCESS_KEY,
                       aws_secret_access_key=fake_bedrock_module.SECRET_KEY)
    route = world.unique("goose-bedrock")
    world.route(route, [(p, "anthropic.claude-sonnet-4-v1:0")])
    session = "goose-br-" + uuid.uuid4().hex[:6]
    for messages in goose_turns(3):
        r = post_goose(gateway, alice, route, messages, session)
        assert r.status_code == 200, r.text
    sent = fake_bedrock.requests[-1].body
    points = [b for m in sent["messages"] for b in m["content"] if "cachePoint" in b]
    assert 1 <= len(points) + sum("cachePoint" in b for b in sent.get("system") or []) \
        + sum("cachePoint" in t for t in sent["toolConfig"]["tools"]) <= 4
    assert all(b == {"cachePoint": {"type": "default"}} for b in points)
    assert not fake_bedrock.rejected


def test_goose_conversation_through_bedrock_cached_share_rises_turn_by_turn(gateway, alice, fake_bedrock):
    """The same Goose conversation (OpenAI format) through a Bedrock route: the fake reports
    cache reads/writes only for prefixes ending at a cachePoint it saw, and the records are
    priced at the model's cache read/write prices."""
    from tests.fakes import bedrock as fake_bedrock_module

    model = "anthropic.claude-sonnet-4-v1:0"
    p = world.provider(fake_bedrock.url, type="bedrock", api_key="", region=fake_bedrock_module.REGION,
                       aws_access_key_id=fake_bedrock_module.ACCESS_KEY,
                       aws_secret_access_key=fake_bedrock_module.SECRET_KEY, model=model)
    world.price(p, model, 3.0, 15.0, cache_read_price=0.3, cache_write_price=3.75)
    route = world.unique("goose-bedrock-cache")
    world.route(route, [(p, model)])
    session = "goose-brc-" + uuid.uuid4().hex[:6]
    shares, ids = play_goose(gateway, alice, route, session)
    assert not fake_bedrock.rejected
    assert shares[0] == 0
    rising = [s for s in shares if s > 0]
    assert len(rising) >= 3 and rising == sorted(rising) and len(set(rising)) == len(rising), shares
    assert shares[-1] > 0.7, shares
    last = world.wait_record(ids[-1])
    assert last.cached_tokens > 0 and last.cache_write_tokens > 0
    expected = (3.0 * (last.prompt_tokens - last.cached_tokens - last.cache_write_tokens)
                + 0.3 * last.cached_tokens + 3.75 * last.cache_write_tokens
                + 15.0 * last.completion_tokens) / 1e6
    assert float(last.cost_usd) == pytest.approx(expected, abs=1e-7)


def test_bedrock_fake_caches_only_marked_prefixes(gateway, alice, fake_bedrock):
    """Without cache points (the route's switch off) the fake reports no cache at all."""
    from tests.fakes import bedrock as fake_bedrock_module

    p = world.provider(fake_bedrock.url, type="bedrock", api_key="", region=fake_bedrock_module.REGION,
                       aws_access_key_id=fake_bedrock_module.ACCESS_KEY,
                       aws_secret_access_key=fake_bedrock_module.SECRET_KEY)
    r = world.route(world.unique("bedrock-nocache"), [(p, "anthropic.claude-sonnet-4-v1:0")])
    r.prompt_cache = False
    r.save()
    for messages in goose_turns(3):
        response = post_goose(gateway, alice, r.name, messages, "s-br-off")
        assert response.status_code == 200
        assert not (response.json()["usage"].get("prompt_tokens_details") or {}).get("cached_tokens")
    assert not any("cachePoint" in json.dumps(rec.body) for rec in fake_bedrock.requests)


def test_openai_upstreams_keep_the_prompt_cache_key(gateway, alice, fake_openai):
    chat_provider = world.provider(fake_openai.url + "/v1", wire_api="chat")
    # A Responses client (Codex sends prompt_cache_key) translated to chat completions.
    r = httpx.post(gateway.url + "/v1/responses", headers={"authorization": f"Bearer {alice}"}, timeout=30,
                   json={"model": f"{chat_provider.name}/mock", "input": "hi",
                         "prompt_cache_key": "codex-abc"})
    assert r.status_code == 200, r.text
    assert fake_openai.last().body["prompt_cache_key"] == "codex-abc"
    # An Anthropic client with a session: the session id is the key.
    r = httpx.post(gateway.url + "/v1/messages", timeout=30,
                   headers={"x-api-key": alice, "anthropic-version": "2023-06-01",
                            "x-claude-code-session-id": "cc-session-1"},
                   json={"model": f"{chat_provider.name}/mock", "max_tokens": 100,
                         "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text
    assert fake_openai.last().body["prompt_cache_key"] == "cc-session-1"
