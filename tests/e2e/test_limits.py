"""Budgets and per-key rate limits, enforced by the running gateway."""

from __future__ import annotations

import io
import time

import httpx
from django.contrib.auth import get_user_model
from django.core.management import call_command

from gateway.keys import hash_key
from gateway.models import Budget, VirtualKey
from gateway.services import key_issue

from . import world

CHAT = [{"role": "user", "content": "hello"}]


def post(gateway, key, model, **headers):
    return httpx.post(gateway.url + "/v1/chat/completions", json={"model": model, "messages": CHAT},
                      headers={"authorization": f"Bearer {key}", **headers}, timeout=30)


def priced_provider(fake_openai):
    """Every request costs more than one cent: 7 output tokens at $2,000 per 1M."""
    upstream = world.provider(fake_openai.url + "/v1")
    world.price(upstream, "mock", input_price=0, output_price=2000)
    return upstream


def test_a_spent_hard_key_budget_refuses_the_next_request(gateway, fake_openai):
    upstream = priced_provider(fake_openai)
    _, key = key_issue(username="dave", budget_usd=0.01, budget_period="daily")
    first = post(gateway, key, upstream.name)
    assert first.status_code == 200
    assert float(world.wait_record(first.headers["x-request-id"]).cost_usd) == 0.014
    refused = post(gateway, key, upstream.name)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "insufficient_quota" and "budget of $0.01 (daily) is spent" in error["message"]
    assert len(fake_openai.requests) == 1  # nothing forwarded
    anthropic = httpx.post(gateway.url + "/v1/messages", headers={"x-api-key": key},
                           json={"model": upstream.name, "max_tokens": 5, "messages": CHAT})
    assert anthropic.status_code == 429 and anthropic.json()["error"]["type"] == "rate_limit_error"


def test_a_user_budget_covers_all_of_the_users_keys(gateway, fake_openai):
    upstream = priced_provider(fake_openai)
    name = world.unique("erin")
    _, laptop = key_issue(username=name)
    _, desktop = key_issue(username=name)
    Budget.objects.create(user=get_user_model().objects.get(username=name), amount_usd=0.01, period="monthly")
    assert post(gateway, laptop, upstream.name).status_code == 200
    assert post(gateway, desktop, upstream.name).status_code == 429


def test_a_soft_budget_only_warns(gateway, fake_openai):
    upstream = priced_provider(fake_openai)
    key_row, key = key_issue(username=world.unique("frank"))
    Budget.objects.create(key=key_row, amount_usd=0.01, period="weekly", hard=False)
    post(gateway, key, upstream.name)
    r = post(gateway, key, upstream.name)
    assert r.status_code == 200 and "spent" in r.headers["x-gateway-budget-warning"]


def test_spend_already_in_the_database_counts_after_a_restart_of_the_snapshot(gateway, fake_openai):
    upstream = priced_provider(fake_openai)
    key_row, key = key_issue(username=world.unique("gina"))
    assert post(gateway, key, upstream.name).status_code == 200
    time.sleep(0.3)  # flushed to the database
    Budget.objects.create(key=key_row, amount_usd=0.01, period="total")  # a config save: snapshot rebuilt
    assert post(gateway, key, upstream.name).status_code == 429


def test_requests_per_minute_are_limited_per_key_with_retry_after(gateway, fake_openai):
    upstream = world.provider(fake_openai.url + "/v1")
    _, key = key_issue(username=world.unique("hank"), rpm_limit=2)
    assert [post(gateway, key, upstream.name).status_code for _ in range(2)] == [200, 200]
    r = post(gateway, key, upstream.name)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(r.headers["retry-after"]) <= 60


def test_tokens_per_minute_are_limited_per_key(gateway, fake_openai):
    upstream = world.provider(fake_openai.url + "/v1")
    _, key = key_issue(username=world.unique("ivy"), tpm_limit=10)
    assert post(gateway, key, upstream.name).status_code == 200  # uses more than 10 tokens
    r = post(gateway, key, upstream.name)
    assert r.status_code == 429 and "tokens per minute" in r.json()["error"]["message"]


def anthropic_post(gateway, key, model):
    return httpx.post(gateway.url + "/v1/messages", headers={"x-api-key": key}, timeout=30,
                      json={"model": model, "max_tokens": 5, "messages": CHAT})


def test_two_keys_of_one_user_share_the_users_requests_per_minute(gateway, fake_openai):
    upstream = world.provider(fake_openai.url + "/v1")
    name = world.unique("rhea")
    _, laptop = key_issue(username=name)
    _, desktop = key_issue(username=name, rpm_limit=10)
    _, other = key_issue(username=world.unique("sam"))
    world.user_limits(name, rpm_limit=3)
    first = post(gateway, laptop, upstream.name)
    assert first.status_code == 200
    assert (first.headers["x-ratelimit-limit-requests"], first.headers["x-ratelimit-remaining-requests"]) == \
        ("3", "2")
    second = post(gateway, desktop, upstream.name)
    # The tightest window: the user's (1 left), not the desktop key's own (9 left).
    assert second.headers["x-ratelimit-limit-requests"] == "3"
    assert second.headers["x-ratelimit-remaining-requests"] == "1"
    assert second.headers["x-ratelimit-reset-requests"] in ("1m0s", "59s", "58s")  # the first one's age
    assert anthropic_post(gateway, laptop, upstream.name).status_code == 200  # every front door counts
    forwarded = len(fake_openai.requests)

    refused = post(gateway, desktop, upstream.name)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert error["message"] == ("Rate limit of 3 requests per minute reached for this key's user "
                                "(all of the user's keys).")
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    anthropic = anthropic_post(gateway, laptop, upstream.name)
    assert anthropic.status_code == 429 and anthropic.json()["type"] == "error"
    assert anthropic.json()["error"]["type"] == "rate_limit_error"
    assert "requests per minute reached for this key's user" in anthropic.json()["error"]["message"]
    assert anthropic.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(fake_openai.requests) == forwarded  # nothing forwarded
    assert post(gateway, other, upstream.name).status_code == 200  # another user: not limited


def test_tokens_of_one_key_count_for_the_users_other_keys(gateway, fake_openai):
    upstream = world.provider(fake_openai.url + "/v1")
    name = world.unique("tess")
    _, laptop = key_issue(username=name)
    _, desktop = key_issue(username=name, tpm_limit=100_000)
    world.user_limits(name, tpm_limit=10)
    first = post(gateway, laptop, upstream.name)  # uses more than 10 tokens
    assert first.status_code == 200 and first.headers["x-ratelimit-remaining-tokens"] == "10"
    time.sleep(0.2)  # booked when the request settles
    refused = post(gateway, desktop, upstream.name)
    assert refused.status_code == 429
    message = refused.json()["error"]["message"]
    assert "Rate limit of 10 tokens per minute reached for this key's user" in message
    assert refused.headers["x-ratelimit-limit-tokens"] == "10"
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"


def test_a_users_rate_limits_are_set_on_the_users_admin_page(gateway, fake_openai):
    from django.test import Client

    from gateway.models import UserLimits

    upstream = world.provider(fake_openai.url + "/v1")
    name = world.unique("uma")
    _, key = key_issue(username=name)
    user = get_user_model().objects.get(username=name)
    admin, _ = get_user_model().objects.get_or_create(username="root", defaults={"is_staff": True,
                                                                                "is_superuser": True})
    client = Client()
    client.force_login(admin)
    page = client.get(f"/admin/auth/user/{user.id}/change/").content.decode()
    assert "RPM limit" in page and "TPM limit" in page
    r = client.post(f"/admin/auth/user/{user.id}/change/", {
        "username": name, "is_active": "on", "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00",
        "rate_limits-TOTAL_FORMS": 1, "rate_limits-INITIAL_FORMS": 0, "rate_limits-MIN_NUM_FORMS": 0,
        "rate_limits-MAX_NUM_FORMS": 1, "rate_limits-0-rpm_limit": 1, "rate_limits-0-tpm_limit": "",
        "rate_limits-0-user": user.id})
    assert r.status_code == 302, r.content.decode()[:3000]
    assert UserLimits.objects.get(user=user).rpm_limit == 1
    assert post(gateway, key, upstream.name).headers["x-ratelimit-limit-requests"] == "1"  # a config save
    assert post(gateway, key, upstream.name).status_code == 429


def test_issue_key_can_attach_a_budget():
    out = io.StringIO()
    call_command("issue_key", "--user", "judy", "--budget", "25", "--period", "weekly", "--quiet", stdout=out)
    key = VirtualKey.objects.get(key_hash=hash_key(out.getvalue().strip()))
    budget = key.budgets.get()
    assert float(budget.amount_usd) == 25 and budget.period == "weekly" and budget.hard


def concurrent_streams(url: str | list[str], key: str, model: str, n: int = 50) -> list[tuple[int, str]]:
    """n streaming requests at once (max_tokens 10), spread over the given servers."""
    import asyncio

    urls = [url] if isinstance(url, str) else url

    async def run():
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=n)) as client:
            async def one(i):
                body = {"model": model, "messages": CHAT, "stream": True, "max_tokens": 10}
                async with client.stream("POST", urls[i % len(urls)] + "/v1/chat/completions", json=body,
                                         headers={"authorization": f"Bearer {key}"}) as r:
                    await r.aread()
                    return r.status_code, r.headers["x-request-id"]
            return await asyncio.gather(*(one(i) for i in range(n)))

    return asyncio.run(run())


def spend_of(key_row, count: int, timeout: float = 10) -> float:
    from django.db import close_old_connections
    from django.db.models import Sum

    from gateway.models import UsageRecord

    deadline = time.time() + timeout
    while True:
        close_old_connections()
        records = UsageRecord.objects.filter(key=key_row)
        if records.count() >= count or time.time() > deadline:
            return float(records.aggregate(s=Sum("cost_usd"))["s"] or 0)
        time.sleep(0.1)


def test_fifty_concurrent_slow_streams_cannot_overspend_a_budget_that_covers_five(gateway, fake_openai):
    upstream = world.provider(fake_openai.url + "/v1", model="mock:first_delay=1")
    # 7 output tokens at $2,000 per 1M: $0.014 a request; the reservation is 10 tokens (max_tokens) = $0.02
    # plus the estimated prompt at $100 per 1M.
    world.price(upstream, "mock:first_delay=1", input_price=100, output_price=2000)
    key_row, key = key_issue(username=world.unique("olga"), budget_usd=0.07, budget_period="daily")
    results = concurrent_streams(gateway.url, key, upstream.name)
    statuses = [s for s, _ in results]
    admitted = statuses.count(200)
    assert statuses.count(429) == 50 - admitted and 2 <= admitted <= 5
    spent = spend_of(key_row, 50)
    one_estimate = 0.02 + 0.001
    assert spent <= 0.07 + one_estimate, (spent, admitted)
    # Released at settle: once the streams are done, the rest of the budget is usable again.
    last = post(gateway, key, upstream.name)
    assert last.status_code == (200 if spent < 0.07 else 429), (last.text, spent, admitted)


def test_rate_limit_headers_on_responses_where_limits_apply(gateway, fake_openai):
    upstream = world.provider(fake_openai.url + "/v1")
    _, key = key_issue(username=world.unique("pia"), rpm_limit=3, tpm_limit=100_000)
    first = post(gateway, key, upstream.name)
    assert first.headers["x-ratelimit-limit-requests"] == "3"
    assert first.headers["x-ratelimit-remaining-requests"] == "2"
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    assert first.headers["x-ratelimit-limit-tokens"] == "100000"
    assert first.headers["x-ratelimit-remaining-tokens"] == "100000"
    second = post(gateway, key, upstream.name)
    assert int(second.headers["x-ratelimit-remaining-tokens"]) < 100_000  # the first one's tokens
    post(gateway, key, upstream.name)
    refused = post(gateway, key, upstream.name)
    assert refused.status_code == 429 and refused.headers["x-ratelimit-remaining-requests"] == "0"
    _, unlimited = key_issue(username=world.unique("quinn"))
    assert "x-ratelimit-limit-requests" not in post(gateway, unlimited, upstream.name).headers
