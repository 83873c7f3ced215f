"""Spend reports, /me/ and the management API: numbers against the raw records,
permissions (anonymous → login, developer → own data only, staff → all), CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.utils import timezone

from gateway.models import Budget, UsageRecord, VirtualKey
from gateway.services import key_issue

from . import world


@pytest.fixture
def staff():
    user, _ = get_user_model().objects.get_or_create(username="auditor", defaults={"is_staff": True,
                                                                                  "is_superuser": True})
    client = Client()
    client.force_login(user)
    return client


def _developer(name: str) -> tuple[Client, object, VirtualKey]:
    key, _ = key_issue(username=name, name=f"{name} laptop")
    client = Client()
    client.force_login(key.user)
    return client, key.user, key


def _chain(*targets):
    return [{"provider": p, "model": m, "status": s, "ms": 10.0} for p, m, s in targets]


@pytest.fixture
def usage():
    provider = world.unique("rep")
    rows = ((200, _chain((provider, "m", 200)), "0.5"),
            (200, _chain(("elsewhere", "m", 502), (provider, "m", 200)), "0.25"),  # a fallback
            (502, _chain((provider, "m", 502), (provider, "m", 502)), "0"))  # retried, failed
    for i, (status, chain, cost) in enumerate(rows):
        UsageRecord.objects.create(request_id=f"{provider}-{i}", created_at=timezone.now(), endpoint="messages",
                                   provider=provider, model="m", status=status, attempts=len(chain),
                                   attempt_chain=chain, prompt_tokens=1000, completion_tokens=100, cached_tokens=10,
                                   cost_usd=cost, session_id=f"{provider}-session")
    # Claude Code's count_tokens, answered by the gateway: not a request, not spend.
    UsageRecord.objects.create(request_id=f"{provider}-ct", created_at=timezone.now(), endpoint="count_tokens",
                               provider="junction", model="o200k-estimate", status=200, prompt_tokens=900,
                               usage_estimated=True, session_id=f"{provider}-session")
    return provider


def test_reports_and_the_api_require_a_login(gateway):
    for path in ("/reports/", "/reports/requests/", "/live/", "/me/"):
        response = httpx.get(gateway.url + path, follow_redirects=False)
        assert response.status_code == 302 and response.headers["location"].startswith("/login/?next="), path
    assert httpx.get(gateway.url + "/api/usage/").status_code in (401, 403)
    assert httpx.get(gateway.url + "/api/keys/").status_code in (401, 403)


def test_a_developer_may_not_open_the_reports():
    client, _, _ = _developer(world.unique("dev"))
    for path in ("/reports/", "/reports/requests/", "/live/", "/reports/requests/nope/"):
        assert client.get(path).status_code == 403, path
    assert client.get("/api/usage/").status_code == 403


def test_spend_by_provider_adds_up(staff, usage):
    page = staff.get("/reports/", {"by": "provider", "range": "24h"})
    assert page.status_code == 200 and usage in page.content.decode()
    rows = staff.get("/api/usage/", {"by": "provider", "days": 1}).json()["rows"]
    row = next(r for r in rows if r["name"] == usage)
    assert (row["requests"], row["errors"], row["fallbacks"], row["retries"]) == (3, 1, 1, 1)
    assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"]) == (3000, 300, 30)
    assert row["cost_usd"] == 0.75
    assert not any(r["name"] == "junction" for r in rows)


def test_the_overview_api_matches_the_raw_records(staff, usage):
    data = staff.get("/api/reports/overview/", {"provider": usage, "range": "24h"}).json()
    assert (data["total"]["requests"], data["total"]["errors"], data["total"]["fallbacks"]) == (3, 1, 1)
    assert data["total"]["cost_usd"] == 0.75
    assert [p["provider"] for p in data["providers"]] == [usage]
    assert round(data["providers"][0]["error_rate"], 2) == 33.33
    assert sum(sum(s["values"]) for s in data["chart"]["series"]) == pytest.approx(0.75)
    session = next(s for s in data["sessions"] if s["session_id"] == f"{usage}-session")
    assert session["requests"] == 3 and session["cost_usd"] == pytest.approx(0.75)


def test_the_csv_export_has_a_row_per_group(staff, usage):
    response = staff.get("/reports/", {"by": "provider", "range": "24h", "format": "csv"})
    assert response["content-type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][0] == "provider" and [usage, "3", "1", "1", "3000", "300", "30", "0.75"] in rows


@pytest.mark.parametrize("table", ["series", "users", "keys", "models", "providers", "sessions", "budgets"])
def test_every_table_exports_as_csv(staff, usage, table):
    response = staff.get("/reports/", {"range": "24h", "export": table})
    assert response.status_code == 200 and response["content-type"] == "text/csv"
    assert len(list(csv.reader(io.StringIO(response.content.decode())))) >= 1


def test_csv_cells_cannot_run_as_spreadsheet_formulas(staff):
    provider = "=HYPERLINK(\"http://evil\")"
    UsageRecord.objects.create(request_id=world.unique("csvinj"), created_at=timezone.now(), endpoint="messages",
                               provider=provider, model="+cmd|' /C calc'!A0", route="@SUM(1)", status=200,
                               cost_usd="0.01")
    text = staff.get("/reports/", {"range": "24h", "export": "models"}).content.decode()
    assert "'=HYPERLINK" in text and "'+cmd" in text
    text = staff.get("/reports/requests/", {"range": "24h", "export": "requests"}).content.decode()
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert not any(cell[:1] in ("=", "+", "@") for cell in cells)
    assert "'@SUM(1)" in cells


def test_the_request_list_is_filtered_newest_first_and_pages_without_counting(staff, usage):
    page = staff.get("/reports/requests/", {"provider": usage, "range": "24h"}).content.decode()
    assert page.count(f"/reports/requests/{usage}-") == 3 and f"{usage}-ct" not in page
    assert page.index(f"{usage}-2/") < page.index(f"{usage}-0/")
    errors = staff.get("/reports/requests/", {"provider": usage, "range": "24h", "status": "error"}).content.decode()
    assert errors.count(f"/reports/requests/{usage}-") == 1


def test_the_request_page_shows_the_attempt_chain(staff, usage):
    page = staff.get(f"/reports/requests/{usage}-1/").content.decode()
    assert "elsewhere" in page and "502" in page and usage in page and "0.25" in page


def test_the_session_page_costs_turn_by_turn(staff, usage):
    page = staff.get(f"/reports/sessions/{usage}-session/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "3 requests · $0.7500" in text and "count_tokens estimate" in text
    assert text.count("<td class=\"num\">0.7500</td>") >= 1  # the running total reaches the session's cost


def test_a_developer_sees_only_their_own_usage_keys_and_sessions():
    alice, alice_user, alice_key = _developer(world.unique("alice"))
    bob, bob_user, bob_key = _developer(world.unique("bob"))
    for user, key, session in ((alice_user, alice_key, "alice-session"), (bob_user, bob_key, "bob-session")):
        UsageRecord.objects.create(request_id=world.unique("own"), created_at=timezone.now(), endpoint="messages",
                                   user=user, key=key, provider="p", model="m", status=200, cost_usd="0.5",
                                   session_id=f"{session}-{user.id}")
    Budget.objects.create(user=bob_user, amount_usd=10)
    page = alice.get("/me/").content.decode()
    assert alice_key.prefix in page and f"alice-session-{alice_user.id}" in page
    assert bob_key.prefix not in page and "bob-session" not in page
    assert alice.get(f"/me/sessions/bob-session-{bob_user.id}/").status_code == 404
    api_keys = alice.get("/api/keys/").json()
    assert [k["prefix"] for k in api_keys] == [alice_key.prefix]
    assert alice.get("/api/budgets/").json() == []
    overview = alice.get("/api/reports/overview/", {"range": "24h", "user": bob_user.id}).json()
    assert overview["total"]["requests"] == 1 and overview["total"]["cost_usd"] == 0.5  # still only hers
    assert alice.post(f"/api/keys/{bob_key.id}/revoke/").status_code in (403, 404)


def test_staff_see_everyone(staff):
    _, bob_user, bob_key = _developer(world.unique("bob"))
    assert bob_key.prefix in {k["prefix"] for k in staff.get("/api/keys/").json()}
    assert staff.get("/reports/", {"user": bob_user.id}).status_code == 200


def test_developers_issue_and_revoke_their_own_keys_only_when_allowed():
    client, user, key = _developer(world.unique("self"))
    assert client.post("/me/keys/", {"name": "ci"}).status_code == 403
    with override_settings(GATEWAY_SELF_SERVICE_KEYS=True):
        response = client.post("/me/keys/", {"name": "ci"})
        assert response.status_code == 302
        page = client.get("/me/").content.decode()
        new = VirtualKey.objects.filter(user=user, name="ci").get()
        assert 'class="secret"' in page and new.prefix in page and "ANTHROPIC_BASE_URL=http://testserver" in page
        plaintext = re.search(r'id="new-key">(jk-[\w-]+)<', page).group(1)
        assert plaintext.startswith(new.prefix) and f"ANTHROPIC_AUTH_TOKEN={plaintext}" in page
        assert plaintext not in client.get("/me/").content.decode()  # shown once
        assert client.post(f"/me/keys/{key.id}/revoke/").status_code == 302
        key.refresh_from_db()
        assert key.revoked_at is not None
        other, _, other_key = _developer(world.unique("other"))
        assert client.post(f"/me/keys/{other_key.id}/revoke/").status_code == 404
        issued = client.post("/api/keys/", {"name": "api"}, content_type="application/json").json()
        assert issued["key"].startswith("jk-") and issued["user"] == user.username


def test_admins_issue_keys_and_budgets_through_the_api(staff):
    name = world.unique("apiuser")
    get_user_model().objects.create(username=name)
    issued = staff.post("/api/keys/", {"user": name, "name": "laptop"}, content_type="application/json")
    assert issued.status_code == 201 and issued.json()["key"].startswith("jk-")
    budget = staff.post("/api/budgets/", {"key": issued.json()["id"], "amount_usd": "5", "period": "daily"},
                        content_type="application/json")
    assert budget.status_code == 201
    bad = staff.post("/api/budgets/", {"amount_usd": "5"}, content_type="application/json")
    assert bad.status_code == 400 and "exactly one" in str(bad.json())
    revoked = staff.post(f"/api/keys/{issued.json()['id']}/revoke/").json()
    assert revoked["active"] is False


def test_budget_burn_projects_the_period_end(staff):
    _, user, key = _developer(world.unique("burn"))
    Budget.objects.create(key=key, amount_usd=1, period="daily")
    UsageRecord.objects.create(request_id=world.unique("burn"), created_at=timezone.now() - timedelta(seconds=1),
                               endpoint="messages", user=user, key=key, provider="p", model="m", status=200,
                               cost_usd="0.5")
    burn = next(b for b in staff.get("/api/reports/overview/", {"range": "24h"}).json()["budgets"]
                if b["owner"].startswith(key.prefix))
    assert burn["spent"] == pytest.approx(0.5) and burn["percent"] == pytest.approx(50)
    assert burn["projected"] >= 0.5


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


def test_a_developer_logs_in_at_login_and_lands_on_my_usage():
    name = world.unique("login")
    get_user_model().objects.create_user(username=name, password="a-long-password-1")
    client = Client()
    response = client.post("/login/", {"username": name, "password": "a-long-password-1", "next": "/me/"})
    assert response.status_code == 302 and response["location"] == "/me/"
    page = client.get("/me/").content.decode()
    assert "My usage" in page and "Set up your agent" in page and "No keys yet." in page
