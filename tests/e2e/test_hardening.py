"""Hardening (issue 11): tenant isolation, hostile input, secrets in logs, metrics."""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest

from gateway.services import key_issue

from . import world


@pytest.fixture
def alice():
    return world.alice_key()


@pytest.fixture
def bob():
    return key_issue(username="bob", name="bob laptop")[1]


@pytest.fixture
def upstreams(fake_openai, fake_anthropic):
    return {
        "openai_chat": world.provider(fake_openai.url + "/v1", wire_api="chat"),
        "anthropic": world.provider(fake_anthropic.url, type="anthropic"),
        "openai_responses": world.provider(fake_openai.url + "/v1", wire_api="responses"),
    }


RESP_ID = re.compile(r"^resp_[0-9a-f]{32}$")


class TestStoredResponsesBelongToTheirUser:
    @pytest.mark.parametrize("upstream", ["openai_chat", "anthropic", "openai_responses"])
    @pytest.mark.parametrize("stream", [False, True])
    def test_ids_are_random_gateway_ids_and_only_the_owner_sees_them(self, gateway, alice, bob, upstreams,
                                                                      upstream, stream):
        model = f"{upstreams[upstream].name}/mock"
        mine = openai.OpenAI(base_url=gateway.url + "/v1", api_key=alice, max_retries=0)
        if stream:
            events = list(mine.responses.create(model=model, input="Remember 42.", stream=True))
            ids = {e.response.id for e in events if hasattr(e, "response")}
            assert len(ids) == 1, ids  # created, in_progress and completed agree
            ident = ids.pop()
        else:
            ident = mine.responses.create(model=model, input="Remember 42.").id
        assert RESP_ID.match(ident), ident
        assert mine.responses.retrieve(ident).id == ident
        # Another alice key is the same user: allowed.
        other_alice = world.alice_key()
        r = httpx.get(f"{gateway.url}/v1/responses/{ident}", headers={"authorization": f"Bearer {other_alice}"})
        assert r.status_code == 200 and r.json()["id"] == ident
        # bob gets the same 404 as for an id that does not exist, and nothing is sent upstream.
        r = httpx.get(f"{gateway.url}/v1/responses/{ident}", headers={"authorization": f"Bearer {bob}"})
        unknown = httpx.get(f"{gateway.url}/v1/responses/resp_{'0' * 32}", headers={"authorization": f"Bearer {bob}"})
        assert r.status_code == unknown.status_code == 404
        assert r.json()["error"]["message"].replace(ident, "X") == \
            unknown.json()["error"]["message"].replace(f"resp_{'0' * 32}", "X")
        r = httpx.post(gateway.url + "/v1/responses", headers={"authorization": f"Bearer {bob}"},
                       json={"model": model, "input": "What number?", "previous_response_id": ident})
        assert r.status_code == 404 and "not found" in r.json()["error"]["message"]
        second = mine.responses.create(model=model, input="What number?", previous_response_id=ident)
        assert RESP_ID.match(second.id) and second.id != ident
