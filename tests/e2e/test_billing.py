"""Every request that reached a provider is billed (issue 9): a stream interrupted by
the client, an upstream drop, a stall or a timeout after forwarding is recorded with
estimated tokens (prompt by the offline tokenizer or as the provider reported it,
output as relayed), priced, and marked estimated. Through each front door, with an
OpenAI-format and an Ollama upstream (both report usage only at the end)."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from gateway.proxy.tokens import estimate_request
from providers.codecs import get_codec
from tests.fakes.anthropic import input_tokens_of
from tests.fakes.base import prompt_tokens_of

from . import world

PROMPT = "Explain what a gateway does for coding agents, in detail, with examples. " * 20
CHAT = [{"role": "user", "content": PROMPT}]

# front door → (path, body builder, client format)
DOORS = {
    "openai_chat": ("/v1/chat/completions",
                    lambda m: {"model": m, "messages": CHAT, "stream": True}, "openai_chat"),
    "anthropic": ("/v1/messages",
                  lambda m: {"model": m, "max_tokens": 4000, "messages": CHAT, "stream": True},
                  "anthropic_messages"),
    "responses": ("/v1/responses", lambda m: {"model": m, "input": PROMPT, "stream": True, "store": False},
                  "openai_responses"),
    "ollama": ("/api/chat", lambda m: {"model": m, "messages": CHAT, "stream": True}, "ollama"),
}
# upstream → (fixture, type, model, behaviour separator)
UPSTREAMS = {
    "openai": ("fake_openai", "openai", "mock", ":", "/v1"),
    "ollama": ("fake_ollama", "ollama", "qwen2.5-coder:14b", "#", ""),
}
# case → (behaviour, provider fields, client reads at most this many raw chunks then hangs up (None: all))
CASES = {
    "client_disconnect": ("tokens=400,token_delay=0.02", {}, 12),  # past the Responses preamble events
    "upstream_drop": ("tokens=400,drop_after=6", {}, None),
    "stall": ("tokens=400,stall_after=6", {"first_token_timeout": 0.6}, None),
    "timeout": ("tokens=400,token_delay=0.05", {"total_timeout": 0.8}, None),
}


@pytest.fixture
def alice():
    return world.alice_key()


def _expected_prompt(client_format: str, body: dict) -> int:
    return estimate_request(get_codec(client_format).decode_request(body))


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("upstream_kind", list(UPSTREAMS))
@pytest.mark.parametrize("door", list(DOORS))
def test_an_interrupted_stream_is_billed_on_estimates(request, gateway, alice, door, upstream_kind, case):
    fixture, ptype, base_model, sep, path = UPSTREAMS[upstream_kind]
    behaviour, fields, read_chunks = CASES[case]
    fake = request.getfixturevalue(fixture)
    extra = {"api_key": ""} if ptype == "ollama" else {}
    provider = world.provider(fake.url + path, type=ptype, model=base_model, **extra, **fields)
    model = base_model + sep + behaviour
    world.price(provider, model, input_price=3, output_price=15)  # admin price: Ollama is otherwise free
    url, build, client_format = DOORS[door]
    body = build(f"{provider.name}/{model}")
    headers = {"authorization": f"Bearer {alice}"}
    with httpx.stream("POST", gateway.url + url, json=body, headers=headers, timeout=30) as r:
        assert r.status_code == 200
        request_id = r.headers["x-request-id"]
        for i, _ in enumerate(r.iter_raw()):
            if read_chunks is not None and i + 1 >= read_chunks:
                break
    rec = world.wait_record(request_id, timeout=10)
    assert rec.usage_estimated, (rec.status, rec.error_type)
    assert rec.prompt_tokens == _expected_prompt(client_format, body)
    assert 1 <= rec.completion_tokens < 400
    assert rec.price_source == "admin"
    expected = (rec.prompt_tokens * 3 + rec.completion_tokens * 15) / 1_000_000
    assert float(rec.cost_usd) == pytest.approx(expected, abs=1e-8)
    if case == "client_disconnect":
        assert rec.client_disconnected and rec.status == 499
    else:
        assert rec.status >= 500


def test_the_providers_own_prompt_count_wins_over_the_estimate(gateway, alice, fake_anthropic):
    """Anthropic reports input tokens in message_start: an upstream drop keeps them."""
    provider = world.provider(fake_anthropic.url, type="anthropic", model="claude-sonnet-4-5")
    body = {"model": f"{provider.name}/claude-sonnet-4-5:tokens=400,drop_after=6", "max_tokens": 4000,
            "messages": CHAT, "stream": True}
    r = httpx.post(gateway.url + "/v1/messages", json=body, headers={"x-api-key": alice}, timeout=30)
    rec = world.wait_record(r.headers["x-request-id"])
    assert rec.usage_estimated and rec.status == 502
    sent = fake_anthropic.last().body
    assert rec.prompt_tokens == input_tokens_of(sent)  # the fake's count, not the tokenizer's
    assert rec.completion_tokens >= 1
    assert rec.price_source == "database" and float(rec.cost_usd) > 0


def test_a_refused_request_is_not_billed(gateway, alice, fake_openai):
    provider = world.provider(fake_openai.url + "/v1")
    world.price(provider, "mock:status=400", input_price=3, output_price=15)
    r = httpx.post(gateway.url + "/v1/chat/completions", json={"model": f"{provider.name}/mock:status=400",
                                                               "messages": CHAT},
                   headers={"authorization": f"Bearer {alice}"}, timeout=30)
    assert r.status_code == 400
    rec = world.wait_record(r.headers["x-request-id"])
    assert rec.prompt_tokens == 0 and rec.cost_usd == 0 and not rec.usage_estimated


def test_a_complete_stream_is_not_estimated(gateway, alice, fake_openai):
    provider = world.provider(fake_openai.url + "/v1")
    r = httpx.post(gateway.url + "/v1/chat/completions", json={"model": f"{provider.name}/gpt-4o",
                                                               "messages": CHAT, "stream": True},
                   headers={"authorization": f"Bearer {alice}"}, timeout=30)
    assert r.status_code == 200
    time.sleep(0.05)
    rec = world.wait_record(r.headers["x-request-id"])
    assert not rec.usage_estimated and rec.status == 200 and rec.price_source == "database"


def test_a_big_prompt_is_counted_off_the_event_loop(gateway, alice, fake_openai):
    """Prompts over 32 KB are tokenized in a worker thread; the count is the same."""
    provider = world.provider(fake_openai.url + "/v1")
    body = {"model": f"{provider.name}/mock:tokens=400,drop_after=6",
            "messages": [{"role": "user", "content": PROMPT * 40}], "stream": True}
    r = httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=30,
                   headers={"authorization": f"Bearer {alice}"})
    rec = world.wait_record(r.headers["x-request-id"])
    assert rec.usage_estimated and rec.prompt_tokens == _expected_prompt("openai_chat", body) > 10_000


# --------------------------------------------------------------------------- abandoned attempts

# front door → (path, body builder, client format, fake fixture, base path, provider type, count prompt)
FALLBACK_DOORS = {
    "openai_chat": ("/v1/chat/completions", lambda m, s: {"model": m, "messages": CHAT, "stream": s},
                    "openai_chat", "fake_openai", "/v1", "openai", prompt_tokens_of),
    "anthropic": ("/v1/messages",
                  lambda m, s: {"model": m, "max_tokens": 4000, "messages": CHAT, "stream": s},
                  "anthropic_messages", "fake_anthropic", "", "anthropic", input_tokens_of),
    "responses": ("/v1/responses", lambda m, s: {"model": m, "input": CHAT, "stream": s, "store": False},
                  "openai_responses", "fake_openai", "/v1", "openai", prompt_tokens_of),
}


# how the first candidate fails after it got the request → (stream, behaviour, its status and error)
ABANDONED = {
    "stream_stall": (True, "stall_after=0", 504, "timeout"),  # headers, then no byte
    "json_stall": (False, "hang", 504, "timeout"),  # no byte at all
    "json_cut": (False, "cut_body", 502, "bad_gateway"),  # the start of the answer, then a dropped connection
}


@pytest.mark.parametrize("case", list(ABANDONED))
@pytest.mark.parametrize("door", list(FALLBACK_DOORS))
def test_an_attempt_abandoned_for_a_fallback_is_billed_too(request, gateway, alice, door, case):
    """The first candidate got the prompt, then stalled before its first byte or broke off its
    answer (the provider bills that prompt); the fallback served the request. One record: its
    cost is the first attempt's estimate at the first model's price plus the second attempt's
    actual usage at its own price, each listed in the attempt chain; the record is estimated."""
    url, build, client_format, fixture, path, ptype, upstream_prompt = FALLBACK_DOORS[door]
    stream, behaviour, status, error = ABANDONED[case]
    fake = request.getfixturevalue(fixture)
    model = "claude-sonnet-4-5" if ptype == "anthropic" else "mock"
    slow = world.provider(fake.url + path, type=ptype, model=model, first_token_timeout=0.5)
    healthy = world.provider(fake.url + path, type=ptype, model=model)
    stalled = f"{model}:{behaviour}"
    world.price(slow, stalled, input_price=3, output_price=15)
    world.price(healthy, model, input_price=1, output_price=2)
    name = world.unique("abandoned")
    world.route(name, [(slow, stalled), (healthy, model)])
    body = build(name, stream)
    r = httpx.post(gateway.url + url, json=body, headers={"authorization": f"Bearer {alice}"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["x-gateway-provider"] == healthy.name and r.headers["x-gateway-attempts"] == "2"
    rec = world.wait_record(r.headers["x-request-id"])
    first, second = rec.attempt_chain
    assert (first["provider"], first["status"], first["error"]) == (slow.name, status, error)
    estimate = _expected_prompt(client_format, body)
    assert first["prompt_tokens"] == estimate and first["completion_tokens"] == 0 and first["estimated"]
    assert first["cost_usd"] == pytest.approx(estimate * 3 / 1e6, abs=1e-8)
    actual_prompt = upstream_prompt(fake.last().body)
    assert (second["provider"], second["status"]) == (healthy.name, 200)
    assert second["prompt_tokens"] == actual_prompt
    assert second["completion_tokens"] > 0 and not second.get("estimated")
    assert second["cost_usd"] == pytest.approx((actual_prompt * 1 + second["completion_tokens"] * 2) / 1e6,
                                               abs=1e-8)
    assert float(rec.cost_usd) == pytest.approx(first["cost_usd"] + second["cost_usd"], abs=1e-8)
    assert rec.usage_estimated and rec.status == 200 and rec.price_source == "admin"
    assert rec.prompt_tokens == estimate + actual_prompt
    assert rec.completion_tokens == second["completion_tokens"]


@pytest.fixture
def silent_tls_port():
    """A loopback TCP port that accepts and never speaks: a TLS handshake to it never
    completes, so an `https://` provider there hits its connect timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.parametrize("failure", ["refused", "connect_timeout", "status_500", "status_429"])
def test_an_attempt_the_provider_never_processed_is_not_billed(gateway, alice, fake_openai, failure,
                                                               silent_tls_port):
    """Connection refused, a connect (TLS handshake) timeout or an error status answered
    before generation: the provider did not process the prompt, so only the fallback is billed."""
    if failure == "refused":
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
        probe.close()  # nothing listens there now
        first = world.provider(f"http://127.0.0.1:{dead_port}/v1")
        first_model = "mock"
    elif failure == "connect_timeout":
        first = world.provider(f"https://127.0.0.1:{silent_tls_port}/v1", connect_timeout=0.3)
        first_model = "mock"
    else:
        first = world.provider(fake_openai.url + "/v1")
        first_model = f"mock:status={failure.split('_')[1]}"
    world.price(first, first_model, input_price=3, output_price=15)
    healthy = world.provider(fake_openai.url + "/v1")
    world.price(healthy, "mock", input_price=1, output_price=2)
    name = world.unique("unbilled")
    world.route(name, [(first, first_model), (healthy, "mock")])
    r = httpx.post(gateway.url + "/v1/chat/completions", json={"model": name, "messages": CHAT},
                   headers={"authorization": f"Bearer {alice}"}, timeout=30)
    assert r.status_code == 200, r.text
    rec = world.wait_record(r.headers["x-request-id"])
    assert [a["provider"] for a in rec.attempt_chain] == [first.name, healthy.name]
    assert rec.attempt_chain[0]["status"] == {"refused": 502, "connect_timeout": 504, "status_500": 500,
                                              "status_429": 429}[failure]
    assert "cost_usd" not in rec.attempt_chain[0] and not rec.usage_estimated
    assert rec.prompt_tokens == prompt_tokens_of(fake_openai.last().body)
    expected = (rec.prompt_tokens * 1 + rec.completion_tokens * 2) / 1e6  # the fallback's price only
    assert float(rec.cost_usd) == pytest.approx(expected, abs=1e-8)


def test_when_every_candidate_fails_the_abandoned_attempts_are_still_billed(gateway, alice, fake_openai):
    """A stall, then a refusal, retried once: the two stalled attempts are billed (each at its
    estimate), the refusals are not; the record carries the error status and the stalls' cost."""
    slow = world.provider(fake_openai.url + "/v1", first_token_timeout=0.5)
    broken = world.provider(fake_openai.url + "/v1")
    world.price(slow, "mock:hang", input_price=3, output_price=15)
    world.price(broken, "mock:status=503", input_price=1, output_price=2)
    name = world.unique("allfail")
    world.route(name, [(slow, "mock:hang"), (broken, "mock:status=503")])
    body = {"model": name, "messages": CHAT}
    r = httpx.post(gateway.url + "/v1/chat/completions", json=body,
                   headers={"authorization": f"Bearer {alice}"}, timeout=30)
    assert r.status_code == 503
    rec = world.wait_record(r.headers["x-request-id"])
    chain = rec.attempt_chain
    assert [(a["provider"], a["status"]) for a in chain] == [(slow.name, 504), (broken.name, 503)] * 2
    estimate = _expected_prompt("openai_chat", body)
    assert [a.get("prompt_tokens") for a in chain] == [estimate, None, estimate, None]
    assert rec.usage_estimated and rec.prompt_tokens == 2 * estimate and rec.completion_tokens == 0
    assert rec.price_source == "admin" and rec.status == 503
    assert float(rec.cost_usd) == pytest.approx(2 * estimate * 3 / 1e6, abs=1e-8)
