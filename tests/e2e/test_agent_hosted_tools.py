"""Hosted tools (Codex's `web_search`, Anthropic's `web_search_20250305`) on translated routes,
by the route's policy: map to the target's own web search where it has one, else drop it (and
say so), refuse only when asked to or when tool_choice forces the tool."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from gateway.config_file import export_config, import_config
from routing.models import Route
from tests.fakes import bedrock as fake_bedrock_module

from . import world

CODEX = json.loads(
    (
        Path(__file__).resolve().parents[1]
        / "fixtures"
        / "agents"
        / "codex"
        / "01-responses-mock"
        / "001-v1_responses.json"
    ).read_text()
)
FUNCTION = {
    "type": "function",
    "name": "exec_command",
    "description": "Run a command",
    "strict": False,
    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
}
WEB_SEARCH = {"type": "web_search", "external_web_access": False}


@pytest.fixture
def key():
    return world.alice_key()


def routed(name: str, provider, model: str, hosted_tools: str = "map") -> str:
    route = world.route(world.unique(name), [(provider, model)])
    if hosted_tools != "map":
        route.hosted_tools = hosted_tools
        route.save()
    return route.name


def responses(gateway, key, body, **kw):
    return httpx.post(
        gateway.url + "/v1/responses", json=body, timeout=30, headers={"authorization": f"Bearer {key}"}, **kw
    )


def sse(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.split("\n\n"):
        lines = block.split("\n")
        if len(lines) >= 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "):
            out.append((lines[0][7:], json.loads(lines[1][6:])))
    return out


# ---------------------------------------------------------------- map


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_codex_web_search_maps_to_anthropics_server_tool_and_its_call_comes_back_as_a_web_search_call(
    gateway, key, fake_anthropic, stream
):
    provider = world.provider(fake_anthropic.url, type="anthropic")
    model = routed("anthropic-search", provider, "mock:web_search")
    body = {"model": model, "input": "search the web", "tools": [FUNCTION, WEB_SEARCH], "stream": stream}
    r = responses(gateway, key, body)
    assert r.status_code == 200, r.text
    assert "x-gateway-dropped-tools" not in r.headers
    sent = fake_anthropic.last().body["tools"]
    assert sent[-1] == {"type": "web_search_20250305", "name": "web_search"}
    assert [t["name"] for t in sent] == ["exec_command", "web_search"]
    if stream:
        events = sse(r.text)
        final = events[-1][1]["response"]
        assert events[-1][0] == "response.completed"
        kinds = [k for k, _ in events]
        assert kinds.index("response.web_search_call.in_progress") < kinds.index(
            "response.web_search_call.completed"
        )
        seq = [d["sequence_number"] for _, d in events]
        assert seq == list(range(len(seq)))
    else:
        final = r.json()
    items = final["output"]
    assert items[0]["type"] == "web_search_call" and items[0]["status"] == "completed"
    assert items[0]["action"] == {"type": "search", "query": "junction llm gateway"}
    assert items[1]["type"] == "message" and items[1]["content"][0]["text"].startswith("Hello world")
    record = world.wait_record(r.headers["x-request-id"])
    assert record.status == 200 and record.dropped_tools == []


def test_the_official_sdk_reads_the_mapped_web_search_call(gateway, key, fake_anthropic):
    provider = world.provider(fake_anthropic.url, type="anthropic")
    model = routed("anthropic-search-sdk", provider, "mock:web_search")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    with client.responses.stream(model=model, input="search", tools=[WEB_SEARCH]) as stream:
        final = stream.get_final_response()
    assert (
        final.output[0].type == "web_search_call" and final.output[0].action.query == "junction llm gateway"
    )
    assert final.output_text.startswith("Hello world")


def test_web_search_maps_to_openrouters_web_plugin(gateway, key, fake_openrouter):
    provider = world.provider(fake_openrouter.url + "/api/v1", type="openrouter", model="openai/gpt-4o")
    r = responses(
        gateway,
        key,
        {
            "model": routed("or-search", provider, "openai/gpt-4o"),
            "input": "hi",
            "tools": [FUNCTION, WEB_SEARCH],
        },
    )
    assert r.status_code == 200, r.text
    sent = fake_openrouter.last().body
    assert sent["plugins"] == [{"id": "web"}]
    assert [t["function"]["name"] for t in sent["tools"]] == ["exec_command"]
    assert "x-gateway-dropped-tools" not in r.headers


def test_anthropic_clients_web_search_maps_to_the_responses_apis_own(gateway, key, fake_openai):
    provider = world.provider(fake_openai.url + "/v1", wire_api="responses")
    r = httpx.post(
        gateway.url + "/v1/messages",
        timeout=30,
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        json={
            "model": routed("resp-search", provider, "mock"),
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
        },
    )
    assert r.status_code == 200, r.text
    assert fake_openai.last().body["tools"] == [{"type": "web_search"}]


# ---------------------------------------------------------------- drop


UPSTREAMS_WITHOUT_SEARCH = {
    "openai-chat": lambda fakes: (world.provider(fakes["fake_openai"].url + "/v1", wire_api="chat"), "mock"),
    "ollama": lambda fakes: (
        world.provider(fakes["fake_ollama"].url, type="ollama", api_key=""),
        "qwen2.5-coder:14b",
    ),
    "bedrock": lambda fakes: (
        world.provider(
            fakes["fake_bedrock"].url,
            type="bedrock",
            api_key="",
            region=fake_bedrock_module.REGION,
            aws_access_key_id=fake_bedrock_module.ACCESS_KEY,
            aws_secret_access_key=fake_bedrock_module.SECRET_KEY,
        ),
        "anthropic.claude-sonnet-4-v1:0",
    ),
}


@pytest.mark.parametrize("upstream", list(UPSTREAMS_WITHOUT_SEARCH))
def test_a_real_codex_request_is_served_without_web_search_where_the_target_has_none(
    request, gateway, key, upstream
):
    fakes = {n: request.getfixturevalue(n) for n in ("fake_openai", "fake_ollama", "fake_bedrock")}
    provider, model = UPSTREAMS_WITHOUT_SEARCH[upstream](fakes)
    body = dict(CODEX["body"], model=routed(f"codex-{upstream}", provider, model))
    r = responses(gateway, key, body)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["x-gateway-dropped-tools"] == "web_search"
    fake = fakes[{"openai-chat": "fake_openai", "ollama": "fake_ollama", "bedrock": "fake_bedrock"}[upstream]]
    sent = json.dumps(fake.last().body)
    assert "exec_command" in sent and "web_search" not in sent
    record = world.wait_record(r.headers["x-request-id"])
    assert record.status == 200 and record.dropped_tools == ["web_search"]


def test_policy_drop_leaves_web_search_out_even_where_it_could_be_mapped(gateway, key, fake_anthropic):
    provider = world.provider(fake_anthropic.url, type="anthropic")
    r = responses(
        gateway,
        key,
        {
            "model": routed("drop", provider, "mock", "drop"),
            "input": "hi",
            "tools": [FUNCTION, WEB_SEARCH],
            "stream": True,
        },
    )
    assert r.status_code == 200
    assert r.headers["x-gateway-dropped-tools"] == "web_search"
    assert [t["name"] for t in fake_anthropic.last().body["tools"]] == ["exec_command"]


def test_only_hosted_tools_dropped_means_no_tools_at_all(gateway, key, fake_openai):
    provider = world.provider(fake_openai.url + "/v1", wire_api="chat")
    r = responses(
        gateway,
        key,
        {
            "model": routed("only-hosted", provider, "mock"),
            "input": "hi",
            "tools": [WEB_SEARCH],
            "tool_choice": "auto",
        },
    )
    assert r.status_code == 200, r.text
    sent = fake_openai.last().body
    assert "tools" not in sent and "tool_choice" not in sent


# ---------------------------------------------------------------- refuse


def test_policy_refuse_is_a_clear_400(gateway, key, fake_anthropic):
    provider = world.provider(fake_anthropic.url, type="anthropic")
    r = responses(
        gateway,
        key,
        {
            "model": routed("refuse", provider, "mock", "refuse"),
            "input": "hi",
            "tools": [FUNCTION, WEB_SEARCH],
        },
    )
    assert r.status_code == 400
    assert (
        "web_search" in r.json()["error"]["message"]
        and "hosted_tools: refuse" in r.json()["error"]["message"]
    )
    assert fake_anthropic.requests == []


def test_a_tool_choice_forcing_web_search_is_refused_where_it_cannot_run(gateway, key, fake_openai):
    provider = world.provider(fake_openai.url + "/v1", wire_api="chat")
    r = responses(
        gateway,
        key,
        {
            "model": routed("forced", provider, "mock"),
            "input": "hi",
            "tools": [FUNCTION, WEB_SEARCH],
            "tool_choice": {"type": "web_search"},
        },
    )
    assert r.status_code == 400
    assert "forces the hosted tool web_search" in r.json()["error"]["message"]
    assert fake_openai.requests == []


def test_a_tool_choice_forcing_web_search_is_forwarded_where_it_maps(gateway, key, fake_anthropic):
    provider = world.provider(fake_anthropic.url, type="anthropic")
    r = responses(
        gateway,
        key,
        {
            "model": routed("forced-map", provider, "mock:web_search"),
            "input": "hi",
            "tools": [FUNCTION, WEB_SEARCH],
            "tool_choice": {"type": "web_search"},
        },
    )
    assert r.status_code == 200, r.text
    assert fake_anthropic.last().body["tool_choice"]["type"] == "tool"
    assert fake_anthropic.last().body["tool_choice"]["name"] == "web_search"


# ---------------------------------------------------------------- config


def test_hosted_tools_policy_round_trips_through_the_config_file():
    text = yaml.safe_dump(
        {
            "providers": [{"name": "ht-local", "type": "ollama", "model": "qwen2.5-coder:7b"}],
            "routes": [
                {"name": "ht-strict", "targets": ["ht-local"], "hosted_tools": "refuse"},
                {"name": "ht-quiet", "targets": ["ht-local"], "hosted_tools": "drop"},
                {"name": "ht-normal", "targets": ["ht-local"]},
            ],
        }
    )
    import_config(yaml.safe_load(text))
    assert {r.name: r.hosted_tools for r in Route.objects.filter(name__startswith="ht-")} == {
        "ht-strict": "refuse",
        "ht-quiet": "drop",
        "ht-normal": "map",
    }
    exported = {r["name"]: r for r in export_config()["routes"]}
    assert (
        exported["ht-strict"]["hosted_tools"] == "refuse" and exported["ht-quiet"]["hosted_tools"] == "drop"
    )
    assert "hosted_tools" not in exported["ht-normal"]


def test_an_unknown_hosted_tools_policy_is_a_config_error():
    from gateway.config_file import ConfigError

    expected = r"routes\[0\]\.hosted_tools: unknown value `maybe` \(one of: map, drop, refuse\)"
    with pytest.raises(ConfigError, match=expected):
        import_config(
            {
                "providers": [{"name": "ht-x", "type": "ollama"}],
                "routes": [{"name": "ht-bad", "targets": ["ht-x"], "hosted_tools": "maybe"}],
            }
        )


def test_other_hosted_tools_are_dropped_by_name_and_client_run_anthropic_tools_stay(
    gateway, key, fake_openai
):
    provider = world.provider(fake_openai.url + "/v1", wire_api="chat")
    apply_patch = {
        "type": "custom",
        "name": "apply_patch",
        "description": "Patch files",
        "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
    }
    r = responses(
        gateway,
        key,
        {
            "model": routed("custom", provider, "mock"),
            "input": "hi",
            "tools": [FUNCTION, apply_patch, WEB_SEARCH, {"type": "file_search"}],
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-gateway-dropped-tools"] == "apply_patch,web_search,file_search"
    r = httpx.post(
        gateway.url + "/v1/messages",
        timeout=30,
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        json={
            "model": routed("anthropic-tools", provider, "mock"),
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [
                {"type": "bash_20250124", "name": "bash"},
                {"type": "web_fetch_20250910", "name": "web_fetch"},
            ],
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-gateway-dropped-tools"] == "web_fetch"
    assert [t["function"]["name"] for t in fake_openai.last().body["tools"]] == ["bash"]


def test_a_fallback_that_runs_the_hosted_tool_reports_nothing_dropped(gateway, key, fake_openai):
    chat_only = world.provider(fake_openai.url + "/v1", wire_api="chat")
    responses_api = world.provider(fake_openai.url + "/v1", wire_api="responses")
    route = world.route(world.unique("fallback"), [(chat_only, "mock:status=500"), (responses_api, "mock")])
    r = responses(gateway, key, {"model": route.name, "input": "hi", "tools": [FUNCTION, WEB_SEARCH]})
    assert r.status_code == 200 and r.headers["x-gateway-attempts"] == "2"
    assert "x-gateway-dropped-tools" not in r.headers
    assert fake_openai.last().body["tools"][-1] == WEB_SEARCH
    assert world.wait_record(r.headers["x-request-id"]).dropped_tools == []


def test_codex_replays_a_mapped_search_in_its_next_turn(gateway, key, fake_anthropic):
    """Codex sends the whole conversation again, the web_search_call item included (store: false)."""
    provider = world.provider(fake_anthropic.url, type="anthropic")
    model = routed("anthropic-replay", provider, "mock:web_search")
    first = responses(
        gateway, key, {"model": model, "input": "search", "tools": [FUNCTION, WEB_SEARCH], "store": False}
    ).json()
    items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "search"}]}]
    items += first["output"] + [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "thanks"}]}
    ]
    assert items[1]["type"] == "web_search_call"
    r = responses(
        gateway,
        key,
        {"model": model, "input": items, "tools": [FUNCTION, WEB_SEARCH], "store": False, "stream": True},
    )
    assert r.status_code == 200 and sse(r.text)[-1][0] == "response.completed", r.text[:300]
    sent = fake_anthropic.last().body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert "server_tool_use" not in json.dumps(sent)  # Anthropic could not verify it: left out
