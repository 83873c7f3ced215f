"""Spend reports: HTML with CSV export and the JSON API, staff only."""

from __future__ import annotations

import csv
import io

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from gateway.models import UsageRecord

from . import world


@pytest.fixture
def staff():
    user, _ = get_user_model().objects.get_or_create(username="auditor", defaults={"is_staff": True,
                                                                                  "is_superuser": True})
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def usage():
    provider = world.unique("rep")
    for i, (status, attempts, cost) in enumerate(((200, 1, "0.5"), (200, 2, "0.25"), (502, 2, "0"))):
        UsageRecord.objects.create(request_id=f"{provider}-{i}", created_at=timezone.now(), endpoint="messages",
                                   provider=provider, model="m", status=status, attempts=attempts,
                                   prompt_tokens=1000, completion_tokens=100, cached_tokens=10, cost_usd=cost)
    return provider


def test_reports_and_the_api_require_a_staff_login(gateway):
    assert httpx.get(gateway.url + "/reports/", follow_redirects=False).status_code == 302
    assert httpx.get(gateway.url + "/api/usage/").status_code in (401, 403)


def test_spend_by_provider_adds_up(staff, usage):
    page = staff.get("/reports/", {"by": "provider", "days": 1})
    assert page.status_code == 200 and usage in page.content.decode()
    rows = staff.get("/api/usage/", {"by": "provider", "days": 1}).json()["rows"]
    row = next(r for r in rows if r["name"] == usage)
    assert (row["requests"], row["errors"], row["fallbacks"]) == (3, 1, 2)
    assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"]) == (3000, 300, 30)
    assert row["cost_usd"] == 0.75


def test_the_csv_export_has_a_row_per_group(staff, usage):
    response = staff.get("/reports/", {"by": "provider", "days": 1, "format": "csv"})
    assert response["content-type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][0] == "provider" and [usage, "3", "1", "2", "3000", "300", "30", "0.75"] in rows


def test_an_unknown_dimension_is_a_400(staff):
    assert staff.get("/reports/", {"by": "color"}).status_code == 400
    assert staff.get("/api/usage/", {"by": "color"}).status_code == 400


class TestSpendNeedsTheViewSpendPermission:
    """Staff status alone (e.g. a provider editor) does not show everyone's spend."""

    @staticmethod
    def login(username: str, *perms: str, group: str | None = None) -> Client:
        from django.contrib.auth.models import Group, Permission

        user, _ = get_user_model().objects.get_or_create(username=username, defaults={"is_staff": True})
        for perm in perms:
            app, codename = perm.split(".")
            permission = Permission.objects.get(content_type__app_label=app, codename=codename)
            if group:
                g, _ = Group.objects.get_or_create(name=group)
                g.permissions.add(permission)
                user.groups.add(g)
            else:
                user.user_permissions.add(permission)
        client = Client()
        client.force_login(user)
        return client

    def test_a_staff_user_with_only_change_provider_sees_no_spend(self, usage):
        client = self.login("provider-editor", "providers.change_provider")
        assert client.get("/reports/", {"by": "user"}).status_code == 403
        assert client.get("/api/usage/", {"by": "user"}).status_code == 403

    def test_the_view_spend_permission_through_a_group_opens_both(self, usage):
        client = self.login("finance", "gateway.view_spend", group="finance")
        assert client.get("/reports/", {"by": "provider", "days": 1}).status_code == 200
        assert client.get("/api/usage/", {"by": "provider", "days": 1}).status_code == 200
