"""Prices known out of the box (issue 9): a config that names only models gets correct,
non-zero spend from the bundled price database; the record says where its price came
from; unpriced traffic is a warning, never silent; a key can refuse unpriced models
under a hard budget; budgets and reports per team."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import Client

from gateway.models import Budget, VirtualKey
from gateway.services import key_issue
from providers.models import ProviderModel
from providers.pricing import FREE, UNKNOWN, database_price, price_for
from providers.config import ModelInfo
from tests.fakes import azure as fake_azure_module
from tests.fakes import bedrock as fake_bedrock_module
from tests.fakes import openrouter as fake_openrouter_module

from . import world

CHAT = [{"role": "user", "content": "Say hello to the whole team, please."}]
BEDROCK = {"api_key": "", "region": fake_bedrock_module.REGION,
           "aws_access_key_id": fake_bedrock_module.ACCESS_KEY,
           "aws_secret_access_key": fake_bedrock_module.SECRET_KEY}


# --------------------------------------------------------------------------- the lookup (no server)

@pytest.mark.parametrize("ptype, model, input_price, output_price", [
    ("openai", "gpt-4o", 2.5, 10.0),
    ("openai", "gpt-4o-2024-08-06", 2.5, 10.0),
    ("anthropic", "claude-sonnet-4-5", 3.0, 15.0),
    ("anthropic", "claude-sonnet-4-5-20250929", 3.0, 15.0),
    ("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", 0.8, 4.0),
    ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", 3.3, 16.5),  # regional profile: +10 %
    ("azure", "gpt-4o", 2.5, 10.0),
    ("openrouter", "anthropic/claude-sonnet-4.5", 3.0, 15.0),
    ("openrouter", "openai/gpt-4o", 2.5, 10.0),
])
def test_the_database_prices_well_known_models(ptype, model, input_price, output_price):
    price = price_for(ptype, model)
    assert (price.source, price.input, price.output) == ("database", input_price, output_price)
    assert price.cost(100_000, 100_000) == pytest.approx((input_price + output_price) / 10)  # below any tier


def test_cache_prices_and_long_context_tiers_apply():
    sonnet = price_for("anthropic", "claude-sonnet-4-5")
    # 100K prompt of which 60K read from cache and 10K written, 1K output
    assert sonnet.cost(100_000, 1_000, 60_000, 10_000) == pytest.approx(
        (30_000 * 3 + 60_000 * 0.3 + 10_000 * 3.75 + 1_000 * 15) / 1e6)
    # above 200K input tokens the whole request is billed at the long-context rates
    assert sonnet.cost(300_000, 1_000) == pytest.approx((300_000 * 6 + 1_000 * 22.5) / 1e6)
    gpt = price_for("openai", "gpt-4o")
    assert gpt.cost(10_000, 0, 8_000) == pytest.approx((2_000 * 2.5 + 8_000 * 1.25) / 1e6)


def test_admin_prices_win_local_is_free_and_unknown_is_unpriced():
    admin = ModelInfo("gpt-4o", input_price=1.0, output_price=2.0)
    assert price_for("openai", "gpt-4o", admin).source == "admin"
    assert price_for("openai", "gpt-4o", ModelInfo("gpt-4o")).source == "database"  # 0/0: not set
    assert price_for("ollama", "qwen2.5-coder:14b") is FREE
    assert price_for("openai", "my-own-finetune") is UNKNOWN and not UNKNOWN.known
    assert database_price("openai", "deepseek-chat", "https://api.deepseek.com/v1").input > 0  # by base URL


# --------------------------------------------------------------------------- through the gateway

@pytest.fixture
def alice():
    return world.alice_key()


def chat(gateway, key, model, **kw):
    return httpx.post(gateway.url + "/v1/chat/completions", json={"model": model, "messages": CHAT, **kw},
                      headers={"authorization": f"Bearer {key}"}, timeout=30)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("kind", ["openai", "anthropic", "bedrock", "azure"])
def test_a_config_with_only_model_names_books_correct_spend(request, gateway, alice, kind, stream):
    fixture, path, model, fields, ptype = {
        "openai": ("fake_openai", "/v1", "gpt-4o", {}, "openai"),
        "anthropic": ("fake_anthropic", "", "claude-sonnet-4-5", {}, "anthropic"),
        "bedrock": ("fake_bedrock", "", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", BEDROCK, "bedrock"),
        "azure": ("fake_azure", "", "gpt-4o", {"api_key": fake_azure_module.API_KEY}, "azure"),
    }[kind]
    fake = request.getfixturevalue(fixture)
    provider = world.provider(fake.url + path, type=ptype, model=model, **fields)
    if kind == "azure":  # the admin names the deployment, not a price: priced as its model
        ProviderModel.objects.create(provider=provider, model_id="gpt-4o", deployment="mock-prod")
    r = chat(gateway, alice, f"{provider.name}/{model}", stream=stream)
    assert r.status_code == 200, r.text
    rec = world.wait_record(r.headers["x-request-id"])
    assert rec.price_source == "database" and rec.prompt_tokens > 0 and rec.completion_tokens > 0
    expected = database_price(ptype, model).cost(rec.prompt_tokens, rec.completion_tokens, rec.cached_tokens,
                                                 rec.cache_write_tokens)
    assert expected > 0 and float(rec.cost_usd) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_openrouter_bills_what_it_reports(gateway, alice, fake_openrouter, stream):
    """Only a model name in the config: OpenRouter's own `usage.cost` is the spend, exactly."""
    provider = world.provider(fake_openrouter.url + "/api/v1", type="openrouter",
                              model="anthropic/claude-sonnet-4.5")
    r = chat(gateway, alice, provider.name, stream=stream)
    assert r.status_code == 200, r.text
    rec = world.wait_record(r.headers["x-request-id"])
    assert rec.price_source == "provider" and rec.prompt_tokens > 0 and rec.completion_tokens > 0
    reported = round((rec.prompt_tokens + rec.completion_tokens) * fake_openrouter_module.COST_PER_TOKEN, 8)
    assert reported > 0 and float(rec.cost_usd) == pytest.approx(reported, abs=1e-8)
    # not the price database's figure for the same tokens (the fake charges its own rate)
    listed = database_price("openrouter", "anthropic/claude-sonnet-4.5")
    assert float(rec.cost_usd) != pytest.approx(listed.cost(rec.prompt_tokens, rec.completion_tokens))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_admin_price_wins_over_the_providers_reported_cost(gateway, alice, fake_openrouter, stream):
    """Issue 9's order: admin price > provider-reported cost > price database. An admin price
    is an explicit override (a negotiated discount), so OpenRouter's `usage.cost` gives way."""
    provider = world.provider(fake_openrouter.url + "/api/v1", type="openrouter", model="openai/gpt-4o")
    world.price(provider, "openai/gpt-4o", input_price=1, output_price=2)
    r = chat(gateway, alice, provider.name, stream=stream)
    assert r.status_code == 200, r.text
    rec = world.wait_record(r.headers["x-request-id"])
    assert rec.price_source == "admin" and rec.prompt_tokens > 0
    assert float(rec.cost_usd) == pytest.approx((rec.prompt_tokens * 1 + rec.completion_tokens * 2) / 1e6,
                                                abs=1e-8)


def test_the_default_route_is_priced(gateway, alice, fake_openai):
    provider = world.provider(fake_openai.url + "/v1", model="gpt-4o")
    default = world.route("default", [(provider, "gpt-4o")])
    try:
        rec = world.wait_record(chat(gateway, alice, "some-name-the-agent-made-up").headers["x-request-id"])
    finally:
        default.delete()  # other tests expect unknown names to be a 404
    assert rec.route == "default" and rec.price_source == "database" and rec.cost_usd > 0


def test_unpriced_traffic_is_a_warning_in_reports_and_admin(gateway, alice, fake_openai):
    provider = world.provider(fake_openai.url + "/v1")
    rec = world.wait_record(chat(gateway, alice, f"{provider.name}/unlisted-model").headers["x-request-id"])
    assert rec.price_source == "unpriced" and rec.cost_usd == 0 and rec.prompt_tokens > 0
    staff, _ = get_user_model().objects.get_or_create(username="auditor", defaults={"is_staff": True,
                                                                                     "is_superuser": True})
    client = Client()
    client.force_login(staff)
    page = client.get("/reports/?by=model").content.decode()
    assert "had no known price" in page and f"{provider.name}/unlisted-model" in page
    assert client.get("/api/usage/?by=model").json()["unpriced"]["requests"] >= 1
    admin = client.get("/admin/gateway/usagerecord/").content.decode()
    assert "had no known price" in admin


def test_a_key_can_refuse_unpriced_models_under_a_hard_budget(gateway, fake_openai):
    provider = world.provider(fake_openai.url + "/v1")
    name = world.unique("frank")
    _, key = key_issue(username=name, budget_usd=5, budget_period="monthly")
    VirtualKey.objects.filter(user__username=name).update(require_prices=True)
    world.route(world.unique("any"), [(provider, "gpt-4o")])  # a config save: the snapshot is rebuilt
    refused = chat(gateway, key, f"{provider.name}/unlisted-model")
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "model_unpriced" and "no known price" in error["message"]
    assert chat(gateway, key, f"{provider.name}/gpt-4o").status_code == 200  # priced: allowed
    anthropic = httpx.post(gateway.url + "/v1/messages", headers={"x-api-key": key},
                           json={"model": f"{provider.name}/unlisted-model", "max_tokens": 5,
                                 "messages": CHAT})
    assert anthropic.status_code == 400 and anthropic.json()["type"] == "error"


# --------------------------------------------------------------------------- teams

def test_a_budget_belongs_to_exactly_one_owner_in_plain_words():
    team = Group.objects.get_or_create(name=world.unique("team"))[0]
    user = get_user_model().objects.create(username=world.unique("gina"))
    with pytest.raises(ValidationError, match="exactly one user, one key or one team"):
        Budget(user=user, team=team, amount_usd=1).full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        Budget.objects.create(user=user, team=team, amount_usd=1)
    Budget(team=team, amount_usd=1).full_clean()


def test_a_team_budget_covers_every_members_keys_and_reports_by_team(gateway, fake_openai):
    provider = world.provider(fake_openai.url + "/v1")
    world.price(provider, "mock", input_price=0, output_price=2000)  # 7 tokens: $0.014 a request
    team = Group.objects.create(name=world.unique("platform"))
    one, two = world.unique("hal"), world.unique("ivy")
    _, key_one = key_issue(username=one)
    _, key_two = key_issue(username=two)
    for name in (one, two):
        get_user_model().objects.get(username=name).groups.add(team)
    Budget.objects.create(team=team, amount_usd=Decimal("0.01"), period="daily")
    first = chat(gateway, key_one, provider.name)
    assert first.status_code == 200
    world.wait_record(first.headers["x-request-id"])
    refused = chat(gateway, key_two, provider.name)
    assert refused.status_code == 429
    assert "Team budget of $0.01 (daily) is spent" in refused.json()["error"]["message"]
    staff, _ = get_user_model().objects.get_or_create(username="auditor", defaults={"is_staff": True,
                                                                                     "is_superuser": True})
    client = Client()
    client.force_login(staff)
    rows = {row["name"]: row for row in client.get("/api/usage/?by=team").json()["rows"]}
    assert rows[team.name]["cost_usd"] == pytest.approx(0.014)


def test_a_config_file_that_names_only_models_books_correct_spend_for_every_provider_type(
        gateway, alice, fake_openai, fake_anthropic, fake_bedrock, fake_azure, fake_openrouter):
    """Issue 9's "done means", as a new user writes it: a config.yaml with providers and model
    names, no price anywhere. Every provider type books non-zero spend equal to the price
    database's (OpenRouter: its own reported cost)."""
    from gateway.config_file import import_config, load

    tag = world.unique("cfg")
    text = f"""
providers:
  - name: {tag}-openai
    type: openai
    base_url: {fake_openai.url}/v1
    api_key: sk-test
    model: gpt-4o
  - name: {tag}-anthropic
    type: anthropic
    base_url: {fake_anthropic.url}
    api_key: sk-ant-test
    model: claude-sonnet-4-5
  - name: {tag}-bedrock
    type: bedrock
    base_url: {fake_bedrock.url}
    region: {fake_bedrock_module.REGION}
    aws_access_key_id: {fake_bedrock_module.ACCESS_KEY}
    aws_secret_access_key: {fake_bedrock_module.SECRET_KEY}
    model: us.anthropic.claude-sonnet-4-5-20250929-v1:0
  - name: {tag}-azure
    type: azure
    base_url: {fake_azure.url}
    api_key: {fake_azure_module.API_KEY}
    model: gpt-4o
    models:
      - id: gpt-4o
        deployment: mock-prod
  - name: {tag}-openrouter
    type: openrouter
    base_url: {fake_openrouter.url}/api/v1
    api_key: sk-or-test
    model: anthropic/claude-sonnet-4.5
"""
    import_config(load(text), source="config.yaml")
    for ptype, model in [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"),
                         ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"), ("azure", "gpt-4o"),
                         ("openrouter", "anthropic/claude-sonnet-4.5")]:
        for stream in (False, True):
            r = chat(gateway, alice, f"{tag}-{ptype}", stream=stream)
            assert r.status_code == 200, (ptype, r.text)
            rec = world.wait_record(r.headers["x-request-id"])
            assert rec.prompt_tokens > 0 and rec.completion_tokens > 0, ptype
            if ptype == "openrouter":
                expected = round((rec.prompt_tokens + rec.completion_tokens)
                                 * fake_openrouter_module.COST_PER_TOKEN, 8)
                assert rec.price_source == "provider"
            else:
                expected = database_price(ptype, model).cost(rec.prompt_tokens, rec.completion_tokens,
                                                             rec.cached_tokens, rec.cache_write_tokens)
                assert rec.price_source == "database", ptype
            assert expected > 0 and float(rec.cost_usd) == pytest.approx(expected, abs=1e-8), (ptype, stream)
