"""The exact response cache (gateway/proxy/response_cache.py), over real sockets, on both
backends: the database (the session's gateway) and Redis (a gateway with REDIS_URL)."""

from __future__ import annotations

import concurrent.futures
import json
import tempfile
import time

import anthropic
import httpx
import openai
import pytest
from django.conf import settings
from django.test import override_settings

from gateway.services import key_issue

from . import world
from .conftest import GatewayProcess

TOOLS = [{"type": "function", "function": {"name": "tree", "description": "List files", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}}}}}]
TOOLS_ANTHROPIC = [{"name": "tree", "description": "List files",
                    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]


@pytest.fixture(scope="module")
def redis_gateway(redis_url):
    """A gateway with REDIS_URL (its own data directory: it learns config saves through Redis)."""
    server = GatewayProcess({"REDIS_URL": redis_url, "CELERY_BROKER_URL": "memory://",
                             "GATEWAY_CLUSTER_SYNC_SECONDS": "0.05",
                             "GATEWAY_DATA_DIR": tempfile.mkdtemp(prefix="junction-rc-")})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_gateway_b(redis_gateway, redis_url):
    """A second process of the same Redis deployment (another host, or another worker)."""
    server = GatewayProcess({"REDIS_URL": redis_url, "CELERY_BROKER_URL": "memory://",
                             "GATEWAY_CLUSTER_SYNC_SECONDS": "0.05",
                             "GATEWAY_DATA_DIR": tempfile.mkdtemp(prefix="junction-rc-b-")})
    yield server
    server.stop()


@pytest.fixture(params=["database", "redis"])
def server(request, gateway):
    if request.param == "database":
        yield gateway
        return
    redis_server = request.getfixturevalue("redis_gateway")
    # Config saved here is announced through Redis, as an admin process of that deployment does.
    with override_settings(REDIS_URL=request.getfixturevalue("redis_url")):
        yield redis_server


@pytest.fixture
def admin_client():
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(username="root", defaults={"is_staff": True,
                                                                                "is_superuser": True})
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


@pytest.fixture
def alice():
    return world.alice_key()


def cached_route(targets, **fields):
    r = world.route(world.unique("rc"), targets)
    r.response_cache = True
    for name, value in fields.items():
        setattr(r, name, value)
    r.save()
    if settings.REDIS_URL:
        time.sleep(0.3)  # the Redis gateway polls the config version every 0.05 s
    return r.name


@pytest.fixture
def chat_route(fake_openai):
    p = world.provider(fake_openai.url + "/v1", wire_api="chat")
    world.price(p, "mock:tools", 2.0, 8.0)
    return cached_route([(p, "mock:tools")])


def chat(server, key, route, headers=None, **body):
    body = {"model": route, "messages": [{"role": "user", "content": "list src"}], "temperature": 0,
            "tools": TOOLS, **body}
    return httpx.post(server.url + "/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {key}", **(headers or {})})


def test_miss_then_hit_costs_nothing_and_books_the_saving(server, alice, chat_route, fake_openai):
    first = chat(server, alice, chat_route)
    assert first.status_code == 200 and first.headers["x-gateway-cache"] == "miss"
    second = chat(server, alice, chat_route)
    assert second.status_code == 200 and second.headers["x-gateway-cache"] == "hit"
    assert second.content == first.content
    assert len(fake_openai.requests) == 1
    missed = world.wait_record(first.headers["x-request-id"])
    hit = world.wait_record(second.headers["x-request-id"])
    assert not missed.cache_hit and float(missed.cost_usd) > 0
    assert hit.cache_hit and float(hit.cost_usd) == 0 and hit.prompt_tokens == 0
    assert float(hit.saved_usd) == pytest.approx(float(missed.cost_usd))
    assert hit.provider == missed.provider and hit.model == "mock:tools"


def test_only_deterministic_requests_unless_the_route_opts_in(gateway, alice, fake_openai):
    p = world.provider(fake_openai.url + "/v1", wire_api="chat")
    strict = cached_route([(p, "mock")])
    for _ in range(2):
        r = chat(gateway, alice, strict, temperature=0.7)
        assert r.headers["x-gateway-cache"] == "bypass"
    assert len(fake_openai.requests) == 2
    loose = cached_route([(p, "mock")], response_cache_any_temperature=True)
    assert chat(gateway, alice, loose, temperature=0.7).headers["x-gateway-cache"] == "miss"
    assert chat(gateway, alice, loose, temperature=0.7).headers["x-gateway-cache"] == "hit"
    off = world.route(world.unique("rc-off"), [(p, "mock")]).name
    assert chat(gateway, alice, off).headers["x-gateway-cache"] == "bypass"


def test_request_controls(gateway, alice, chat_route, fake_openai):
    def status(headers=None):
        return chat(gateway, alice, chat_route, headers).headers["x-gateway-cache"]

    assert status() == "miss"
    assert status({"x-gateway-cache": "bypass"}) == "bypass"
    assert status({"cache-control": "no-store"}) == "bypass"
    assert len(fake_openai.requests) == 3
    fresh = chat(gateway, alice, chat_route, {"cache-control": "no-cache"})
    assert fresh.headers["x-gateway-cache"] == "miss" and len(fake_openai.requests) == 4
    assert chat(gateway, alice, chat_route).headers["x-gateway-cache"] == "hit"
    assert len(fake_openai.requests) == 4


def test_scoped_per_user(server, alice, chat_route, fake_openai):
    bob = key_issue(username="bob", name="bob laptop")[1]
    assert chat(server, alice, chat_route).headers["x-gateway-cache"] == "miss"
    assert chat(server, bob, chat_route).headers["x-gateway-cache"] == "miss"
    assert chat(server, bob, chat_route).headers["x-gateway-cache"] == "hit"
    assert len(fake_openai.requests) == 2


def test_ttl_expiry(server, alice, fake_openai):
    p = world.provider(fake_openai.url + "/v1", wire_api="chat")
    route = cached_route([(p, "mock")], response_cache_ttl=1)
    assert chat(server, alice, route).headers["x-gateway-cache"] == "miss"
    assert chat(server, alice, route).headers["x-gateway-cache"] == "hit"
    time.sleep(1.3)
    assert chat(server, alice, route).headers["x-gateway-cache"] == "miss"


def test_size_bound_evicts_the_oldest(server, alice, fake_openai):
    p = world.provider(fake_openai.url + "/v1", wire_api="chat")
    route = cached_route([(p, "mock")], response_cache_max_entries=2)
    for text in ("one", "two", "three"):
        r = chat(server, alice, route, messages=[{"role": "user", "content": text}])
        assert r.headers["x-gateway-cache"] == "miss"
    assert chat(server, alice, route, messages=[{"role": "user", "content": "three"}]).headers[
        "x-gateway-cache"] == "hit"
    assert chat(server, alice, route, messages=[{"role": "user", "content": "one"}]).headers[
        "x-gateway-cache"] == "miss"


def test_stampede_makes_one_upstream_call(gateway, alice, fake_openai):
    p = world.provider(fake_openai.url + "/v1", wire_api="chat")
    route = cached_route([(p, "mock:first_delay=0.5")])
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: chat(gateway, alice, route), range(8)))
    assert all(a.status_code == 200 for a in answers)
    assert sorted(a.headers["x-gateway-cache"] for a in answers) == ["hit"] * 7 + ["miss"]
    assert len(fake_openai.requests) == 1
    assert len({a.content for a in answers}) == 1


def test_stampede_across_two_processes_with_redis_makes_one_upstream_call(redis_gateway, redis_gateway_b,
                                                                         redis_url, alice, fake_openai):
    """Identical requests on two gateway processes sharing Redis, at once: one upstream call
    (the other process waits for the entry under the leader's Redis lock)."""
    with override_settings(REDIS_URL=redis_url):
        p = world.provider(fake_openai.url + "/v1", wire_api="chat")
        route = cached_route([(p, "mock:first_delay=0.5")])
    servers = [redis_gateway, redis_gateway_b] * 4
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda server: chat(server, alice, route), servers))
    assert all(a.status_code == 200 for a in answers)
    assert sorted(a.headers["x-gateway-cache"] for a in answers) == ["hit"] * 7 + ["miss"]
    assert len(fake_openai.requests) == 1
    assert len({a.content for a in answers}) == 1


@pytest.fixture(scope="module")
def worker_pair():
    """Two gateway processes as the workers of one `serve` without Redis: one data dir
    (GATEWAY_WORKERS=2), the database backend."""
    env = {"GATEWAY_WORKERS": "2", "GATEWAY_DATA_DIR": tempfile.mkdtemp(prefix="junction-rc-workers-")}
    servers = [GatewayProcess(env), GatewayProcess(env)]
    yield servers
    for server in servers:
        server.stop()


def test_stampede_across_two_workers_without_redis_makes_one_upstream_call(worker_pair, alice, fake_openai):
    """The same stampede as with Redis, between two workers sharing a data dir: the leader
    holds the key's lock file, the other worker waits for the entry in the database."""
    p = world.provider(fake_openai.url + "/v1", wire_api="chat")
    route = cached_route([(p, "mock:first_delay=0.5")])
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda server: chat(server, alice, route), worker_pair * 4))
    assert all(a.status_code == 200 for a in answers)
    assert sorted(a.headers["x-gateway-cache"] for a in answers) == ["hit"] * 7 + ["miss"]
    assert len(fake_openai.requests) == 1
    assert len({a.content for a in answers}) == 1


def test_host_lock_files_hand_over_when_the_leader_stores_nothing(tmp_path):
    """The lock-file protocol: a waiter gives up after its wait while the leader is silent,
    takes over when the leader releases without an entry, and finds an entry stored meanwhile."""
    import asyncio

    from gateway.proxy.response_cache import HostFlights

    stored: dict = {}

    async def get(key):
        return stored.get(key)

    async def scenario():
        a, b = HostFlights(tmp_path, get), HostFlights(tmp_path, get)
        key = "ab" * 32
        token, entry = await a.lead_or_wait(key, 1.0)
        assert token and entry is None
        started = time.monotonic()
        assert await b.lead_or_wait(key, 0.3) == (None, None)
        assert 0.25 < time.monotonic() - started < 2.0
        waiter = asyncio.ensure_future(b.lead_or_wait(key, 5.0))
        await asyncio.sleep(0.1)
        await a.unlock(key, token)  # the leader failed: no entry
        taken, entry = await asyncio.wait_for(waiter, 2.0)
        assert taken and entry is None
        other = asyncio.ensure_future(a.lead_or_wait(key, 5.0))
        await asyncio.sleep(0.1)
        stored[key] = (b"{}", {"cost": 0.5})
        assert await asyncio.wait_for(other, 2.0) == (None, (b"{}", {"cost": 0.5}))
        await b.unlock(key, taken)
        assert list(tmp_path.iterdir()) == []

    asyncio.run(scenario())


def test_cross_process_wait_is_bounded_and_a_failed_leader_hands_over(redis_url):
    """The Redis lock protocol itself: a waiter gives up after its wait when the leader
    never stores; it takes over when the leader releases its lock without an entry."""
    import asyncio

    from gateway.proxy.response_cache import RedisBackend

    async def scenario():
        backend = RedisBackend(redis_url)
        try:
            key = world.unique("flight")
            token, entry = await backend.lead_or_wait(key, 1.0)
            assert token and entry is None  # first: leads
            started = time.monotonic()
            assert await backend.lead_or_wait(key, 0.3) == (None, None)  # leader silent: bounded wait
            assert 0.25 < time.monotonic() - started < 2.0
            waiter = asyncio.ensure_future(backend.lead_or_wait(key, 5.0))
            await asyncio.sleep(0.1)
            await backend.unlock(key, token)  # the leader failed: no entry
            taken, entry = await asyncio.wait_for(waiter, 2.0)
            assert taken and taken != token and entry is None
            other = asyncio.ensure_future(backend.lead_or_wait(key, 5.0))
            await asyncio.sleep(0.1)
            await backend.put(key, "r", b'{"ok":1}', {"cost": 0.5}, 60, 10)
            assert await asyncio.wait_for(other, 2.0) == (None, (b'{"ok":1}', {"cost": 0.5}))
        finally:
            await backend.client.aclose()

    asyncio.run(scenario())


def _openai_stream(server, key, route):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=route, messages=[{"role": "user", "content": "list src"}], temperature=0, tools=TOOLS,
        stream=True, stream_options={"include_usage": True})
    calls, usage, finish = {}, None, None
    for chunk in raw.parse():
        usage = chunk.usage or usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"name": "", "arguments": ""})
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
    return raw.headers["x-gateway-cache"], calls, (usage.prompt_tokens, usage.completion_tokens), finish


def test_openai_sdk_parses_a_replayed_stream_with_tool_calls(server, alice, chat_route, fake_openai):
    status, calls, usage, finish = _openai_stream(server, alice, chat_route)
    assert status == "miss" and calls[0]["name"] == "tree" and finish == "tool_calls"
    again = _openai_stream(server, alice, chat_route)
    assert (again[0], again[2], again[3]) == ("hit", usage, finish)
    # The arguments as JSON: the replayed stream writes them compactly (the canonical tool input).
    assert [(c["name"], json.loads(c["arguments"])) for c in again[1].values()] == \
        [(c["name"], json.loads(c["arguments"])) for c in calls.values()]
    # The stream's entry answers the same request without a stream, and the other way round.
    whole = chat(server, alice, chat_route)
    assert whole.headers["x-gateway-cache"] == "hit"
    message = whole.json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "tree"
    assert len(fake_openai.requests) == 1


@pytest.mark.parametrize("upstream", ["anthropic", "openai_chat"])
def test_anthropic_sdk_parses_a_replayed_stream_with_tool_calls(server, alice, upstream, fake_openai,
                                                                fake_anthropic):
    p = world.provider(fake_anthropic.url, type="anthropic") if upstream == "anthropic" else \
        world.provider(fake_openai.url + "/v1", wire_api="chat")
    route = cached_route([(p, "mock:tools")])
    client = anthropic.Anthropic(base_url=server.url, api_key=alice, max_retries=0)
    seen = []
    for _ in range(2):
        with client.messages.stream(model=route, max_tokens=300, temperature=0, tools=TOOLS_ANTHROPIC,
                                    messages=[{"role": "user", "content": "list src"}]) as stream:
            message = stream.get_final_message()
            status = stream.response.headers["x-gateway-cache"]
        uses = [(b.name, b.input) for b in message.content if b.type == "tool_use"]
        usage = (message.usage.input_tokens, message.usage.output_tokens)
        seen.append((status, uses, message.stop_reason, usage))
    assert seen[0][0] == "miss" and seen[1][0] == "hit"
    assert seen[0][1] and seen[0][1][0][0] == "tree" and seen[0][2] == "tool_use"
    assert seen[1][1:] == seen[0][1:]
    fake = fake_anthropic if upstream == "anthropic" else fake_openai
    assert len(fake.requests) == 1


def test_purge_per_route_from_the_admin(server, alice, chat_route, fake_openai, admin_client):
    from routing.models import Route

    other = cached_route([(world.provider(fake_openai.url + "/v1", wire_api="chat"), "mock")])
    assert chat(server, alice, chat_route).headers["x-gateway-cache"] == "miss"
    assert chat(server, alice, other).headers["x-gateway-cache"] == "miss"
    time.sleep(0.2)  # stored by a task of its own after the answer
    selected = [Route.objects.get(name=chat_route).pk]
    page = admin_client.post("/admin/routing/route/", {"action": "purge_response_cache",
                                                       "_selected_action": selected}, follow=True)
    assert "1 cached answer(s) purged." in page.content.decode()
    assert chat(server, alice, chat_route).headers["x-gateway-cache"] == "miss"
    assert chat(server, alice, other).headers["x-gateway-cache"] == "hit"


def test_database_backend_hits_come_from_the_in_process_tier(gateway, alice, chat_route, fake_openai):
    """A stored answer is served by the gateway process without a database lookup; a row
    deleted behind its back (another process's eviction) is served on for at most the
    tier's short TTL, and a config version bump (what the admin's purge does) empties it."""
    from gateway.models import ResponseCacheEntry
    from providers.config_version import bump_version

    assert chat(gateway, alice, chat_route).headers["x-gateway-cache"] == "miss"
    time.sleep(0.2)  # stored by a task of its own after the answer
    assert ResponseCacheEntry.objects.filter(route=chat_route).delete()[0] == 1
    assert chat(gateway, alice, chat_route).headers["x-gateway-cache"] == "hit"
    bump_version()
    assert chat(gateway, alice, chat_route).headers["x-gateway-cache"] == "miss"
    assert len(fake_openai.requests) == 2


def test_an_ollama_client_gets_a_replayed_ndjson_stream_with_tool_calls(gateway, alice, fake_openai):
    p = world.provider(fake_openai.url + "/v1", wire_api="chat")
    route = cached_route([(p, "mock:tools")])
    seen = []
    for _ in range(2):
        r = httpx.post(f"{gateway.url}/k/{alice}/api/chat", timeout=30,
                       json={"model": route, "tools": TOOLS, "options": {"temperature": 0},
                             "messages": [{"role": "user", "content": "list"}]})
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.text.splitlines() if line]
        assert lines[-1]["done"] is True and all(not line["done"] for line in lines[:-1])
        calls = [c["function"] for line in lines for c in line["message"].get("tool_calls") or []]
        seen.append((r.headers["x-gateway-cache"], calls, lines[-1]["eval_count"],
                     lines[-1]["prompt_eval_count"]))
    assert seen[0][0] == "miss" and seen[1][0] == "hit"
    assert seen[0][1] == [{"name": "tree", "arguments": {"path": "src", "depth": 2}}]
    assert seen[1][1:] == seen[0][1:]
    assert len(fake_openai.requests) == 1


# ---------------------------------------------------------------------------- Responses API

RESPONSES_TOOLS = [{"type": "function", "name": "tree", "description": "List files",
                    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}]


def _responses_route(kind, fake_openai, fake_anthropic):
    """Passthrough to an OpenAI Responses upstream, or translated to Anthropic."""
    p = world.provider(fake_openai.url + "/v1") if kind == "responses" else \
        world.provider(fake_anthropic.url, type="anthropic")
    world.price(p, "mock:tools", 2.0, 8.0)
    return cached_route([(p, "mock:tools")]), (fake_openai if kind == "responses" else fake_anthropic)


def responses(server, key, route, headers=None, **body):
    body = {"model": route, "input": "list src", "temperature": 0, "tools": RESPONSES_TOOLS, **body}
    return httpx.post(server.url + "/v1/responses", json=body, timeout=30,
                      headers={"authorization": f"Bearer {key}", **(headers or {})})


@pytest.mark.parametrize("kind", ["responses", "anthropic"])
def test_responses_hit_gets_a_fresh_id_and_is_stored_for_chaining(server, alice, kind, fake_openai,
                                                                  fake_anthropic):
    route, fake = _responses_route(kind, fake_openai, fake_anthropic)
    first = responses(server, alice, route)
    second = responses(server, alice, route)
    assert first.status_code == second.status_code == 200
    assert (first.headers["x-gateway-cache"], second.headers["x-gateway-cache"]) == ("miss", "hit")
    assert len(fake.requests) == 1
    a, b = first.json(), second.json()
    assert a["id"] != b["id"] and b["id"].startswith("resp_")
    assert b["output"] == a["output"] and b["usage"] == a["usage"]
    assert [i["name"] for i in b["output"] if i["type"] == "function_call"] == ["tree"]
    # The hit was stored as a conversation of its own: retrievable and chainable by its new id.
    auth = {"authorization": f"Bearer {alice}"}
    got = httpx.get(f"{server.url}/v1/responses/{b['id']}", headers=auth, timeout=10)
    assert got.status_code == 200 and got.json()["id"] == b["id"]
    hit = world.wait_record(second.headers["x-request-id"])
    assert hit.cache_hit and float(hit.cost_usd) == 0 and float(hit.saved_usd) > 0


def test_responses_store_false_is_served_from_the_same_entry_and_not_stored(server, alice, fake_openai,
                                                                            fake_anthropic):
    route, fake = _responses_route("responses", fake_openai, fake_anthropic)
    assert responses(server, alice, route).headers["x-gateway-cache"] == "miss"
    again = responses(server, alice, route, store=False)
    assert again.headers["x-gateway-cache"] == "hit" and again.json()["store"] is False
    auth = {"authorization": f"Bearer {alice}"}
    assert httpx.get(f"{server.url}/v1/responses/{again.json()['id']}", headers=auth,
                     timeout=10).status_code == 404
    assert len(fake.requests) == 1


def test_responses_previous_response_id_is_keyed_on_the_expanded_conversation(server, alice, fake_openai,
                                                                              fake_anthropic):
    """Two chains with the same content (different ids) share the second turn's entry; a
    different conversation before the same new input does not."""
    route, fake = _responses_route("anthropic", fake_openai, fake_anthropic)
    first = responses(server, alice, route).json()["id"]
    twin = responses(server, alice, route).json()["id"]  # a hit: same conversation, another id
    follow = [{"type": "function_call_output", "call_id": "toolu_fake0001", "output": "src/a.py"}]
    turn = responses(server, alice, route, previous_response_id=first, input=follow)
    assert turn.status_code == 200 and turn.headers["x-gateway-cache"] == "miss"
    assert responses(server, alice, route, previous_response_id=twin, input=follow).headers[
        "x-gateway-cache"] == "hit"
    other = responses(server, alice, route, input="list docs").json()["id"]
    assert responses(server, alice, route, previous_response_id=other, input=follow).headers[
        "x-gateway-cache"] == "miss"
    assert len(fake.requests) == 4


def _responses_sdk_stream(server, key, route):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    raw = client.responses.with_raw_response.create(model=route, input="list src", temperature=0,
                                                    tools=RESPONSES_TOOLS, stream=True)
    kinds, calls, final = [], [], None
    for event in raw.parse():
        kinds.append(event.type)
        if event.type == "response.output_item.done" and event.item.type == "function_call":
            calls.append((event.item.name, json.loads(event.item.arguments)))
        if event.type == "response.completed":
            final = event.response
    return raw.headers["x-gateway-cache"], kinds, calls, final


@pytest.mark.parametrize("kind", ["responses", "anthropic"])
def test_openai_sdk_parses_a_replayed_responses_stream_with_tool_calls(server, alice, kind, fake_openai,
                                                                       fake_anthropic):
    route, fake = _responses_route(kind, fake_openai, fake_anthropic)
    status, kinds, calls, final = _responses_sdk_stream(server, alice, route)
    assert status == "miss" and calls and calls[0][0] == "tree"
    again = _responses_sdk_stream(server, alice, route)
    assert again[0] == "hit" and again[2] == calls
    assert again[1][0] == "response.created" and again[1][-1] == "response.completed"
    assert "response.function_call_arguments.done" in again[1]
    assert again[3].id != final.id
    assert (again[3].usage.input_tokens, again[3].usage.output_tokens) == \
        (final.usage.input_tokens, final.usage.output_tokens)
    auth = {"authorization": f"Bearer {alice}"}
    assert httpx.get(f"{server.url}/v1/responses/{again[3].id}", headers=auth, timeout=10).status_code == 200
    # The stream's entry answers the same request without a stream.
    whole = responses(server, alice, route)
    assert whole.headers["x-gateway-cache"] == "hit"
    assert [i["name"] for i in whole.json()["output"] if i["type"] == "function_call"] == ["tree"]
    assert len(fake.requests) == 1
