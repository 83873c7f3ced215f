"""Config import/export, key commands, secrets at rest, the admin, first-run bootstrap."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import Client

from gateway.config_file import export_config, import_config, load
from gateway.keys import hash_key
from gateway.models import VirtualKey
from providers.models import Provider
from routing.models import Route

from . import world
from .conftest import ROOT, SERVER_ENV


def test_import_is_an_idempotent_upsert_with_env_expansion(monkeypatch):
    monkeypatch.setenv("JUNCTION_TEST_KEY", "sk-from-env")
    name = world.unique("cfg")
    text = f"""
providers:
  - name: {name}-a
    type: openai
    model: gpt-4o
    base_url: http://127.0.0.1:9/v1
    api_key: ${{JUNCTION_TEST_KEY}}
    models:
      - id: gpt-4o
        input_price: 2.5
        output_price: 10
  - name: {name}-b
    type: ollama
    model: qwen2.5-coder:7b
    base_url: ${{UNSET_VAR_FOR_TEST:-http://localhost:11434}}
routes:
  - name: {name}-smart
    targets: [{name}-a, {name}-b/qwen2.5-coder:14b]
"""
    for _ in range(2):
        import_config(load(text))
    assert Provider.objects.filter(name__startswith=name).count() == 2
    a = Provider.objects.get(name=f"{name}-a")
    assert a.api_key == "sk-from-env" and a.models.get().output_price == 10
    assert Provider.objects.get(name=f"{name}-b").base_url == "http://localhost:11434"
    route = Route.objects.get(name=f"{name}-smart")
    assert [(t.provider.name, t.model) for t in route.targets.all()] == [(f"{name}-a", ""),
                                                                         (f"{name}-b", "qwen2.5-coder:14b")]
    exported = export_config()
    spec = next(p for p in exported["providers"] if p["name"] == f"{name}-a")
    assert spec["api_key"].startswith("${") and "sk-from-env" not in str(exported)
    assert any(r["name"] == f"{name}-smart" for r in exported["routes"])


def test_routing_default_and_fallback_become_the_default_route():
    name = world.unique("dflt")
    import_config(load(f"""
providers:
  - {{name: {name}-x, type: openai, model: m1, base_url: "http://127.0.0.1:9/v1"}}
  - {{name: {name}-y, type: openai, model: m2, base_url: "http://127.0.0.1:9/v1"}}
routing:
  default: {name}-x
  fallback: [{name}-y]
"""))
    try:
        route = Route.objects.get(name="default")
        assert [t.provider.name for t in route.targets.all()] == [f"{name}-x", f"{name}-y"]
        assert export_config()["routing"] == {"default": f"{name}-x", "fallback": f"{name}-y"}
    finally:
        Route.objects.filter(name="default").delete()


def test_provider_secrets_are_encrypted_at_rest():
    p = world.provider("http://127.0.0.1:9/v1", api_key="sk-very-secret-value")
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM providers_provider WHERE id = %s", [p.id])
        stored = cursor.fetchone()[0]
    assert stored.startswith("fernet:") and "sk-very-secret-value" not in stored
    assert Provider.objects.get(id=p.id).api_key == "sk-very-secret-value"


def test_issue_key_prints_the_key_once_and_stores_only_its_hash():
    out = io.StringIO()
    call_command("issue_key", "--user", "bob", "--quiet", stdout=out)
    key = out.getvalue().strip()
    assert key.startswith("jk-") and len(key) > 40
    row = VirtualKey.objects.get(key_hash=hash_key(key))
    assert row.user.username == "bob" and row.prefix == key[:10]
    assert key not in str(VirtualKey.objects.filter(id=row.id).values().get())
    call_command("revoke_key", row.prefix, stdout=io.StringIO())
    row.refresh_from_db()
    assert row.revoked_at is not None


class TestAdmin:
    @pytest.fixture
    def admin_client(self):
        user, _ = get_user_model().objects.get_or_create(username="root", defaults={"is_staff": True,
                                                                                   "is_superuser": True})
        client = Client()
        client.force_login(user)
        return client

    def test_the_admin_and_its_pages_require_login(self, gateway):
        r = httpx.get(gateway.url + "/admin/providers/provider/", follow_redirects=False)
        assert r.status_code == 302 and "/admin/login/" in r.headers["location"]

    def test_a_provider_secret_is_never_shown_after_saving(self, admin_client):
        p = world.provider("http://127.0.0.1:9/v1", api_key="sk-shown-never")
        response = admin_client.get(f"/admin/providers/provider/{p.id}/change/")
        assert response.status_code == 200 and 'name="api_key"' in response.content.decode()
        assert "sk-shown-never" not in response.content.decode()
        # saving the form with the secret left empty keeps it
        data = {"name": p.name, "type": "openai", "base_url": p.base_url, "default_model": "m", "api_key": "",
                "region": "", "api_version": "", "aws_access_key_id": "", "aws_secret_access_key": "",
                "aws_profile": "", "extra_headers": "{}", "connect_timeout": 5, "first_token_timeout": 60,
                "total_timeout": 600, "wire_api": "auto", "enabled": "on",
                "models-TOTAL_FORMS": 0, "models-INITIAL_FORMS": 0}
        r = admin_client.post(f"/admin/providers/provider/{p.id}/change/", data)
        assert r.status_code == 302, r.content[:2000]
        assert Provider.objects.get(id=p.id).api_key == "sk-shown-never"

    def test_issuing_a_key_in_the_admin_shows_it_once(self, admin_client):
        bob, _ = get_user_model().objects.get_or_create(username="bob")
        r = admin_client.post("/admin/gateway/virtualkey/add/", {"name": "laptop", "user": bob.id}, follow=True)
        import re

        page = r.content.decode()
        assert "shown once" in page
        key = re.search(r"jk-[A-Za-z0-9_-]{43}", page).group(0)
        row = VirtualKey.objects.get(key_hash=hash_key(key))
        assert row.name == "laptop"
        page = admin_client.get(f"/admin/gateway/virtualkey/{row.id}/change/")
        assert page.status_code == 200 and key not in page.content.decode()


def test_the_server_binds_to_loopback_by_default():
    from django.conf import settings

    assert settings.GATEWAY_HOST == "127.0.0.1" and settings.GATEWAY_PORT == 3000


def test_bootstrap_sets_up_a_fresh_data_dir_with_the_demo_config():
    data = tempfile.mkdtemp(prefix="junction-boot-")
    env = {**os.environ, **SERVER_ENV, "GATEWAY_DATA_DIR": data, "DATABASE_URL": f"sqlite:///{data}/db.sqlite3"}
    env.pop("ANTHROPIC_API_KEY", None)
    env.pop("OPENAI_API_KEY", None)
    out = subprocess.run([sys.executable, "manage.py", "bootstrap", "--config", f"{data}/none.yaml"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "demo config" in out.stdout and "Admin login (shown once): admin / " in out.stdout
    assert "Demo virtual key (shown once): jk-" in out.stdout
    again = subprocess.run([sys.executable, "manage.py", "bootstrap", "--config", f"{data}/none.yaml"], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=120)
    assert "Admin login" not in again.stdout and "jk-" not in again.stdout


def test_secrets_and_keys_never_reach_the_server_log(gateway, fake_openai):
    key = world.alice_key()
    p = world.provider(fake_openai.url + "/v1", api_key="sk-log-canary")
    httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
               json={"model": f"{p.name}/mock:status=500", "messages": [{"role": "user", "content": "x"}]})
    httpx.post(f"{gateway.url}/k/{key}/v1/chat/completions", json={"model": "nope", "messages": []})
    logs = gateway.logs()
    assert "sk-log-canary" not in logs and key not in logs


def test_the_daily_rollup_aggregates_usage_per_user_route_provider_and_model():
    from datetime import timedelta

    from django.db.models import Sum
    from django.utils import timezone

    from gateway import rollups
    from gateway.models import DailyUsage, RollupState, UsageRecord
    from gateway.tasks import rollup_usage

    user, _ = get_user_model().objects.get_or_create(username="carol")
    route = world.unique("rollup")
    moment = rollups.floor_hour(timezone.now()) - timedelta(minutes=30)  # the rollups take complete hours
    for i, status in enumerate((200, 200, 502)):
        UsageRecord.objects.create(request_id=f"{route}-{i}", created_at=moment, user=user, endpoint="chat.completions",
                                   route=route, provider="p", model="m", status=status, prompt_tokens=100,
                                   completion_tokens=10, cached_tokens=5, cost_usd="0.001")
    # Rolled up to the hour of these rows: the next pass rebuilds it (and the hour before).
    RollupState.objects.update_or_create(name="usage", defaults={"through": rollups.floor_hour(moment)})
    rollup_usage()
    rollup_usage()  # idempotent
    rows = DailyUsage.objects.filter(route=route)  # one row per status
    row = rows.aggregate(requests=Sum("requests"), errors=Sum("errors"), prompt=Sum("prompt_tokens"),
                         completion=Sum("completion_tokens"), cached=Sum("cached_tokens"), cost=Sum("cost_usd"))
    assert (row["requests"], row["errors"], row["prompt"], row["completion"], row["cached"]) == (3, 1, 300, 30, 15)
    assert float(row["cost"]) == 0.003
    assert {r.user for r in rows} == {user} and {r.day for r in rows} == {moment.date()}


def test_routes_with_rules_round_trip_through_the_config_file():
    name = world.unique("rules")
    text = f"""
providers:
  - {{name: {name}-local, type: ollama, model: "qwen2.5-coder:7b", base_url: "http://127.0.0.1:9"}}
  - {{name: {name}-cloud, type: anthropic, model: claude-sonnet-4-5, base_url: "http://127.0.0.1:9"}}
routes:
  - name: {name}-strong
    targets: [{name}-cloud]
  - name: {name}-agent
    strategy: priority
    session_affinity: false
    targets: [{name}-local]
    rules:
      - name: hard steps
        when: {{min_tools: 1, min_prompt_tokens: 20000}}
        route: {name}-strong
      - name: titles
        when: {{side_call: true}}
        provider: {name}-local
        model: "qwen2.5-coder:1.5b"
"""
    import_config(load(text))
    route = Route.objects.get(name=f"{name}-agent")
    assert not route.session_affinity
    assert [(r.name, r.target_route_id is not None) for r in route.rules.order_by("order")] == [
        ("hard steps", True), ("titles", False)]
    exported = next(r for r in export_config()["routes"] if r["name"] == f"{name}-agent")
    assert exported["rules"][0] == {"name": "hard steps", "when": {"min_tools": 1, "min_prompt_tokens": 20000},
                                    "route": f"{name}-strong"}
    assert exported["session_affinity"] is False
    import_config(load(text))  # idempotent
    assert route.rules.count() == 2
    with pytest.raises(Exception, match="side_cal"):
        import_config(load(text.replace("side_call", "side_cal")))


def test_the_admin_pages_get_their_stylesheets(gateway):
    login = httpx.get(gateway.url + "/admin/login/")
    assert login.status_code == 200 and "/static/admin/css/base.css" in login.text
    css = httpx.get(gateway.url + "/static/admin/css/base.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


def test_bootstrap_never_brings_back_the_demo_key_or_config_an_admin_removed():
    """`make run` after the admin revoked the demo key, then deleted it and every provider:
    no new demo key, no demo config (the first run is remembered in the data dir)."""
    data = tempfile.mkdtemp(prefix="junction-boot-")
    env = {**os.environ, **SERVER_ENV, "GATEWAY_DATA_DIR": data, "DATABASE_URL": f"sqlite:///{data}/db.sqlite3"}
    env.pop("ANTHROPIC_API_KEY", None)
    env.pop("OPENAI_API_KEY", None)

    def manage(*args):
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    first = manage("bootstrap", "--config", f"{data}/none.yaml")
    demo_key = first.split("Demo virtual key (shown once): ")[1].split()[0]
    manage("revoke_key", demo_key)
    after_revoke = manage("bootstrap", "--config", f"{data}/none.yaml")
    assert "jk-" not in after_revoke and "never again" in after_revoke
    manage("shell", "-c", "from gateway.models import VirtualKey; from providers.models import Provider; "
                          "VirtualKey.objects.all().delete(); Provider.objects.all().delete()")
    after_delete = manage("bootstrap", "--config", f"{data}/none.yaml")
    assert "jk-" not in after_delete and "demo config" not in after_delete
    counts = manage("shell", "-c", "from gateway.models import VirtualKey; from providers.models import Provider; "
                                   "print(VirtualKey.objects.count(), Provider.objects.count())")
    assert counts.split()[-2:] == ["0", "0"]
