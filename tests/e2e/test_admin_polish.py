"""The admin as a new admin finds it: branded, a dashboard that leads to the reports,
read-only usage, a usable usage list, a new key shown once with setup snippets."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from gateway.models import UsageRecord, VirtualKey
from gateway.services import key_issue

from . import world


@pytest.fixture
def admin_client():
    user, _ = get_user_model().objects.get_or_create(
        username="root-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    return client


def test_the_admin_index_is_branded_and_leads_to_the_reports(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert "<title>" in page and "Junction" in page and "Django administration" not in page
    for link in (
        'href="/reports/"',
        'href="/live/"',
        "Spend today",
        "Errors, last hour",
        "Budgets near their limit",
    ):
        assert link in page


def test_usage_records_are_read_only(admin_client):
    key, _ = key_issue(username=world.unique("ro"))
    record = UsageRecord.objects.create(
        request_id=world.unique("ro"),
        created_at=timezone.now(),
        endpoint="messages",
        user=key.user,
        key=key,
        provider="p",
        model="m",
        status=200,
        cost_usd="0.1",
    )
    listing = admin_client.get("/admin/gateway/usagerecord/").content.decode()
    assert "/admin/gateway/usagerecord/add/" not in listing
    change = admin_client.get(f"/admin/gateway/usagerecord/{record.id}/change/")
    assert change.status_code == 200 and 'name="_save"' not in change.content.decode()
    assert admin_client.post(f"/admin/gateway/usagerecord/{record.id}/change/", {}).status_code == 403
    for path in ("/admin/gateway/dailyusage/", "/admin/gateway/hourlyusage/"):
        assert path + "add/" not in admin_client.get(path).content.decode()


def test_the_usage_list_takes_a_fixed_number_of_queries_and_no_full_count(admin_client):
    key, _ = key_issue(username=world.unique("list"))
    for i in range(30):
        UsageRecord.objects.create(
            request_id=world.unique("list"),
            created_at=timezone.now(),
            endpoint="messages",
            user=key.user,
            key=key,
            provider="p",
            model="m",
            status=200,
            cost_usd="0.1",
        )
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get("/admin/gateway/usagerecord/").status_code == 200
    sql = [q["sql"] for q in queries.captured_queries]
    assert len(sql) < 15  # not one per row
    counts = [s for s in sql if "COUNT(" in s.upper() and "gateway_usagerecord" in s]
    assert counts and all("LIMIT" in s.upper() for s in counts)  # bounded, never the whole table
    assert admin_client.get("/admin/gateway/usagerecord/", {"status": "error"}).status_code == 200


def test_a_new_key_is_shown_once_in_a_box_with_agent_snippets(admin_client):
    user = get_user_model().objects.create(username=world.unique("newkey"))
    response = admin_client.post("/admin/gateway/virtualkey/add/", {"name": "laptop", "user": user.id})
    page = response.content.decode()
    key = VirtualKey.objects.get(user=user)
    assert response.status_code == 200 and 'class="secret"' in page and key.prefix in page
    assert "data-copy" in page and "ANTHROPIC_BASE_URL=http://testserver" in page and "wire_api" in page


def test_a_budget_without_owner_gets_a_plain_words_message(admin_client):
    page = admin_client.post(
        "/admin/gateway/budget/add/", {"amount_usd": "5", "period": "monthly"}
    ).content.decode()
    message = "A budget belongs to exactly one user, one key or one team: choose one of them."
    assert "is violated" not in page and page.count(message) == 1


def test_no_favicon_404(gateway):
    import httpx

    response = httpx.get(gateway.url + "/favicon.ico", follow_redirects=True)
    assert response.status_code == 200 and "svg" in response.headers["content-type"]


def test_a_model_listed_twice_on_a_provider_gets_a_plain_words_message(admin_client):
    blank = ("base_url", "default_model", "api_key", "region", "aws_access_key_id", "aws_secret_access_key",
             "aws_profile", "api_version", "proxy", "ca_bundle")
    data = {**dict.fromkeys(blank, ""), "name": world.unique("dup"), "type": "openai", "enabled": "on",
            "wire_api": "auto", "extra_headers": "{}", "connect_timeout": "5", "first_token_timeout": "60",
            "total_timeout": "600",
            "models-TOTAL_FORMS": "2", "models-INITIAL_FORMS": "0", "models-MIN_NUM_FORMS": "0",
            "models-MAX_NUM_FORMS": "1000"}
    for i in range(2):
        data.update({f"models-{i}-model_id": "gpt-5", f"models-{i}-input_price": "1",
                     f"models-{i}-output_price": "2", f"models-{i}-enabled": "on"})
    page = admin_client.post("/admin/providers/provider/add/", data).content.decode()
    import re

    errors = re.findall(r'<ul class="errorlist[^"]*">(.*?)</ul>', page, re.S)
    assert any("A model ID can be listed once per provider" in e for e in errors), errors
    assert not any("model_id" in e for e in errors), errors


def test_a_usage_record_links_to_its_request_page_in_the_reports(admin_client):
    record = UsageRecord.objects.create(request_id=world.unique("link"), created_at=timezone.now(),
                                        endpoint="messages", provider="p", model="m", status=200)
    page = admin_client.get(f"/admin/gateway/usagerecord/{record.id}/change/").content.decode()
    assert f'href="/reports/requests/{record.request_id}/"' in page


def test_form_labels_are_in_words(admin_client):
    route = world.route(world.unique("labels"), [])
    page = admin_client.get(f"/admin/routing/route/{route.id}/change/").content.decode()
    assert "Prompt cache TTL:" in page and "Response cache TTL (s):" in page and "cache ttl:" not in page
    page = admin_client.get("/admin/providers/provider/add/").content.decode()
    for label in ("API key", "Base URL", "AWS access key ID", "API version", "CA bundle", "Wire API"):
        assert f">{label}:</label>" in page, label
    assert "clear_api_key" not in page  # nothing stored to clear on an add form
    page = admin_client.get("/admin/gateway/virtualkey/add/").content.decode()
    assert ">RPM limit:</label>" in page and ">TPM limit:</label>" in page
