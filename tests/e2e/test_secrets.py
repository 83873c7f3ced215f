"""Provider secrets: moved destinations clear them, key rotation, unreadable secrets."""

from __future__ import annotations

import io
import shutil
import sqlite3
import time

import httpx
import pytest
from cryptography.fernet import Fernet
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client, override_settings

from providers import crypto
from gateway.services import key_issue
from providers.models import Provider

from . import world


@pytest.fixture
def editor():
    """Staff with change_provider only: the careless (or hostile) admin of issue 11."""
    from django.contrib.auth.models import Permission

    user, _ = get_user_model().objects.get_or_create(
        username="provider-editor-2", defaults={"is_staff": True}
    )
    user.user_permissions.add(
        Permission.objects.get(codename="change_provider"), Permission.objects.get(codename="view_provider")
    )
    client = Client()
    client.force_login(user)
    return client


def _form(p: Provider, **changes) -> dict:
    data = {
        "name": p.name,
        "type": p.type,
        "base_url": p.base_url,
        "default_model": p.default_model,
        "api_key": "",
        "region": p.region,
        "api_version": "",
        "aws_access_key_id": "",
        "aws_secret_access_key": "",
        "aws_profile": "",
        "extra_headers": "{}",
        "connect_timeout": 5,
        "first_token_timeout": 60,
        "total_timeout": 600,
        "wire_api": "auto",
        "enabled": "on",
        "models-TOTAL_FORMS": 0,
        "models-INITIAL_FORMS": 0,
    }
    data.update(changes)
    return data


class TestMovingAProviderClearsItsSecrets:
    def test_a_new_base_url_without_the_secret_clears_it_and_says_so_in_the_admin_log(self, editor):
        p = world.provider("http://127.0.0.1:9/v1", api_key="sk-keep-me-home")
        r = editor.post(
            f"/admin/providers/provider/{p.id}/change/", _form(p, base_url="http://attacker.test/v1")
        )
        assert r.status_code == 302, r.content[:2000]
        p.refresh_from_db()
        assert p.base_url == "http://attacker.test/v1" and p.api_key == ""
        messages = [e.get_change_message() for e in LogEntry.objects.filter(object_id=str(p.id))]
        assert any("Cleared the stored api_key" in m and "base_url" in m for m in messages), messages

    def test_a_new_type_clears_it_too_but_a_secret_entered_again_is_kept(self, editor):
        p = world.provider("http://127.0.0.1:9/v1", api_key="sk-old")
        editor.post(f"/admin/providers/provider/{p.id}/change/", _form(p, type="openrouter"))
        p.refresh_from_db()
        assert p.type == "openrouter" and p.api_key == ""
        editor.post(
            f"/admin/providers/provider/{p.id}/change/",
            _form(p, base_url="http://127.0.0.1:8/v1", api_key="sk-new"),
        )
        p.refresh_from_db()
        assert p.api_key == "sk-new"

    def test_other_changes_keep_the_stored_secret(self, editor):
        p = world.provider("http://127.0.0.1:9/v1", api_key="sk-stays")
        editor.post(f"/admin/providers/provider/{p.id}/change/", _form(p, default_model="other-model"))
        p.refresh_from_db()
        assert p.default_model == "other-model" and p.api_key == "sk-stays"


ORIGINAL = "test-secret-key-not-for-production"


def _raw(provider_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM providers_provider WHERE id = %s", [provider_id])
        return cursor.fetchone()[0]


class TestKeyRotation:
    def test_an_old_secret_key_in_the_fallbacks_still_decrypts_and_rotate_secrets_reencrypts(self):
        p = world.provider("http://127.0.0.1:9/v1", api_key="sk-rotate-me")
        try:
            with override_settings(SECRET_KEY="a-brand-new-secret-key", SECRET_KEY_FALLBACKS=[]):
                crypto.reset_keys()
                assert Provider.objects.get(id=p.id).api_key == ""  # unreadable, but no exception
            with override_settings(SECRET_KEY="a-brand-new-secret-key", SECRET_KEY_FALLBACKS=[ORIGINAL]):
                crypto.reset_keys()
                assert Provider.objects.get(id=p.id).api_key == "sk-rotate-me"
                before = _raw(p.id)
                out = io.StringIO()
                call_command("rotate_secrets", stdout=out)
                assert "re-encrypted" in out.getvalue() and _raw(p.id) != before
            with override_settings(SECRET_KEY="a-brand-new-secret-key", SECRET_KEY_FALLBACKS=[]):
                crypto.reset_keys()
                assert Provider.objects.get(id=p.id).api_key == "sk-rotate-me"  # the new key alone reads it
        finally:  # back to the key the test gateway uses
            with override_settings(SECRET_KEY=ORIGINAL, SECRET_KEY_FALLBACKS=["a-brand-new-secret-key"]):
                crypto.reset_keys()
                call_command("rotate_secrets", stdout=io.StringIO())
            crypto.reset_keys()
        assert Provider.objects.get(id=p.id).api_key == "sk-rotate-me"

    def test_gateway_encryption_keys_rotate_the_same_way(self):
        old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
        try:
            with override_settings(GATEWAY_ENCRYPTION_KEYS=[old]):
                crypto.reset_keys()
                p = world.provider("http://127.0.0.1:9/v1", api_key="sk-explicit")
            with override_settings(GATEWAY_ENCRYPTION_KEYS=[new, old]):
                crypto.reset_keys()
                call_command("rotate_secrets", stdout=io.StringIO())
            with override_settings(GATEWAY_ENCRYPTION_KEYS=[new]):
                crypto.reset_keys()
                assert Provider.objects.get(id=p.id).api_key == "sk-explicit"
        finally:
            crypto.reset_keys()
            Provider.objects.filter(id=p.id).delete()  # written with keys the test gateway lacks

    def test_rotate_secrets_names_what_no_key_decrypts(self):
        p = world.provider("http://127.0.0.1:9/v1", api_key="x")
        foreign = "fernet:" + Fernet(Fernet.generate_key()).encrypt(b"sk-lost").decode()
        Provider.objects.filter(id=p.id).update(api_key="")
        with connection.cursor() as cursor:
            cursor.execute("UPDATE providers_provider SET api_key = %s WHERE id = %s", [foreign, p.id])
        try:
            with pytest.raises(CommandError, match=p.name):
                call_command("rotate_secrets", stdout=io.StringIO())
            assert _raw(p.id) == foreign  # left as it was
            # Saving the row again keeps the ciphertext (the old key may come back).
            row = Provider.objects.get(id=p.id)
            row.default_model = "changed"
            row.save()
            assert _raw(p.id) == foreign
        finally:
            Provider.objects.filter(id=p.id).delete()


class TestAnUnreadableSecretDisablesOnlyItsProvider:
    def test_other_providers_keep_serving_and_health_says_why(self, gateway, fake_openai):
        good = world.provider(fake_openai.url + "/v1")
        bad = world.provider(fake_openai.url + "/v1", api_key="x")
        foreign = "fernet:" + Fernet(Fernet.generate_key()).encrypt(b"sk-lost").decode()
        with connection.cursor() as cursor:
            cursor.execute("UPDATE providers_provider SET api_key = %s WHERE id = %s", [foreign, bad.id])
        good.save()  # bump the config version
        key = key_issue(username="alice", name="alice laptop")[1]
        try:
            r = httpx.post(
                gateway.url + "/v1/chat/completions",
                headers={"authorization": f"Bearer {key}"},
                json={"model": f"{good.name}/mock", "messages": [{"role": "user", "content": "x"}]},
            )
            assert r.status_code == 200, r.text
            ready = httpx.get(gateway.url + "/health/ready").json()
            assert ready["status"] == "degraded" and "decrypt" in ready["provider_errors"][bad.name]
            r = httpx.post(
                gateway.url + "/v1/chat/completions",
                headers={"authorization": f"Bearer {key}"},
                json={"model": bad.name, "messages": [{"role": "user", "content": "x"}]},
            )
            assert r.status_code in (404, 503) and r.json()["error"]["message"]
        finally:
            Provider.objects.filter(id=bad.id).delete()
            good.save()


class TestDatabaseOutage:
    def test_a_config_change_during_an_outage_keeps_serving_from_the_last_snapshot(
        self, fake_openai, tmp_path
    ):
        """The gateway's own copy of the database disappears (an outage, as the gateway
        sees it: every query fails) right after a config change."""
        from .conftest import DATA_DIR, GatewayProcess

        upstream = world.provider(fake_openai.url + "/v1")
        key = key_issue(username="alice", name="alice laptop")[1]
        db = tmp_path / "outage.sqlite3"
        source = sqlite3.connect(DATA_DIR / "test.sqlite3")
        target = sqlite3.connect(db)
        source.backup(target)
        source.close()
        target.close()
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        server = GatewayProcess({"DATABASE_URL": f"sqlite:///{db}", "GATEWAY_DATA_DIR": str(data_dir)})
        body = {"model": f"{upstream.name}/mock", "messages": [{"role": "user", "content": "x"}]}
        headers = {"authorization": f"Bearer {key}"}
        try:
            assert (
                httpx.post(server.url + "/v1/chat/completions", headers=headers, json=body).status_code == 200
            )
            shutil.move(db, tmp_path / "away.sqlite3")
            db.write_bytes(b"this is not a database")
            (data_dir / "config.version").write_text("changed during the outage")
            for _ in range(5):
                r = httpx.post(server.url + "/v1/chat/completions", headers=headers, json=body, timeout=10)
                assert r.status_code == 200, r.text
            ready = httpx.get(server.url + "/health/ready").json()
            assert ready["status"] == "degraded" and ready["snapshot_error"]
            # The database comes back: the next retry (backoff 1 s, then 2 s) rebuilds.
            db.unlink()
            shutil.move(tmp_path / "away.sqlite3", db)
            deadline = time.time() + 10
            while (
                time.time() < deadline and "snapshot_error" in httpx.get(server.url + "/health/ready").json()
            ):
                httpx.post(server.url + "/v1/chat/completions", headers=headers, json=body, timeout=10)
                time.sleep(0.3)
            assert "snapshot_error" not in httpx.get(server.url + "/health/ready").json()
        finally:
            server.stop()


class TestConfigImportClearsMovedSecrets:
    """The config import applies the admin form's rule: a provider whose destination changes
    keeps no stored secret the file does not supply again."""

    @staticmethod
    def load(**spec) -> dict:
        from gateway.config_file import import_config

        return import_config({"providers": [{"name": "moving", "type": "openai", **spec}]})

    def test_a_new_base_url_or_proxy_without_the_key_clears_it(self):
        self.load(base_url="http://127.0.0.1:9/v1", api_key="sk-keep-me-home")
        counts = self.load(base_url="http://attacker.test/v1")
        p = Provider.objects.get(name="moving")
        assert p.base_url == "http://attacker.test/v1" and p.api_key == ""
        assert counts["secrets cleared"] == 1
        self.load(base_url="http://attacker.test/v1", api_key="sk-again")
        self.load(base_url="http://attacker.test/v1", proxy="http://127.0.0.1:3128")
        assert Provider.objects.get(name="moving").api_key == ""

    def test_the_same_destination_or_the_key_supplied_again_keeps_it(self):
        self.load(base_url="http://127.0.0.1:9/v1", api_key="sk-stays")
        counts = self.load(base_url="http://127.0.0.1:9/v1", model="other-model")
        assert Provider.objects.get(name="moving").api_key == "sk-stays" and "secrets cleared" not in counts
        self.load(base_url="http://127.0.0.1:8/v1", api_key="sk-new")
        assert Provider.objects.get(name="moving").api_key == "sk-new"


def test_a_new_proxy_in_the_admin_without_the_secret_clears_it_too(editor):
    """A proxy (with a CA bundle of the proxy's) sees the key as well as a new base URL would."""
    p = world.provider("http://127.0.0.1:9/v1", api_key="sk-not-via-a-proxy")
    r = editor.post(f"/admin/providers/provider/{p.id}/change/", _form(p, proxy="http://127.0.0.1:3128"))
    assert r.status_code == 302, r.content[:2000]
    p.refresh_from_db()
    assert p.proxy == "http://127.0.0.1:3128" and p.api_key == ""
