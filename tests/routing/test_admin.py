"""RouteRule model and admin, the snapshot selectors, and the route tester page."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.test.utils import setup_test_environment, teardown_test_environment

from gateway.models import VirtualKey
from gateway.services import key_issue
from gateway.snapshot import current_version
from routing.models import ProviderHealth, RouteRule
from routing.selectors import health_by_provider, route_info, routes_for_snapshot, with_routing
from routing.table import ConfigSnapshot

from . import world
from .build import AGENTS

CC_TITLE = AGENTS / "claude-code/02-apikey-sonnet45-nonessential-on/002-v1_messages.json"


@pytest.fixture
def admin_client():
    client = Client(HTTP_HOST="localhost")
    client.force_login(world.admin_user())
    return client


@pytest.fixture
def rendered():
    """Template rendering instrumented, so responses carry their context (as under Django's runner)."""
    setup_test_environment()
    yield
    teardown_test_environment()


@pytest.fixture
def setup():
    strong = world.provider("http://strong.invalid/v1", model="sonnet")
    cheap = world.provider("http://cheap.invalid/v1", model="mini")
    agents = world.route([(strong, "sonnet"), (cheap, "mini")])
    return strong, cheap, agents


class TestRouteRule:
    def test_it_validates_conditions_and_targets(self, setup):
        strong, cheap, agents = setup
        bad = RouteRule(route=agents, name="bad", conditions={"side_cal": True, "min_tools": "x"})
        with pytest.raises(ValidationError) as exc:
            bad.full_clean()
        assert "unknown condition `side_cal`" in str(exc.value.message_dict["conditions"])
        assert "exactly one" in str(exc.value.message_dict["target_route"])
        both = RouteRule(route=agents, name="both", target_route=agents, target_provider=cheap)
        with pytest.raises(ValidationError):
            both.full_clean()
        itself = RouteRule(route=agents, name="loop", target_route=agents)
        with pytest.raises(ValidationError, match="its own route"):
            itself.full_clean()
        RouteRule(route=agents, name="ok", conditions={"side_call": True}, target_provider=cheap).full_clean()

    def test_saving_a_rule_bumps_the_config_version(self, setup):
        strong, cheap, agents = setup
        before = current_version()
        world.rule(agents, "side", {"side_call": True}, target_provider=cheap)
        assert current_version() != before

    def test_the_snapshot_selectors_carry_rules_flags_and_health(self, setup):
        strong, cheap, agents = setup
        agents.session_affinity = False
        agents.save()
        world.rule(agents, "second", {}, order=2, target_provider=strong, target_model="haiku")
        world.rule(agents, "first", {"side_call": True}, order=1, target_provider=cheap)
        world.rule(agents, "off", {}, order=0, target_provider=cheap, enabled=False)
        RouteRule.objects.filter(name="second", route=agents).update(conditions={"bogus": 1})  # around the admin
        ProviderHealth.objects.create(provider=strong, status="down")
        ProviderHealth.objects.create(provider=cheap, status="up", latency_ms=42.0)
        info = route_info(next(r for r in routes_for_snapshot() if r.name == agents.name))
        assert [r.name for r in info.rules] == ["first"]  # disabled and invalid rules are left out
        assert info.rules[0].target_provider == cheap.name and info.rules[0].target_model == "mini"
        assert info.session_affinity is False and info.context_window_fallback is True
        assert health_by_provider()[strong.name] == "down"
        snap = with_routing(ConfigSnapshot(version=None, providers={}, routes={}, keys={}))
        assert snap.routes[agents.name].rules[0].name == "first"
        assert snap.health[cheap.name] == "up" and snap.health_latency_ms[cheap.name] == 42.0
        assert strong.name not in snap.health_latency_ms


class TestRouteAdmin:
    def form(self, route, **rule) -> dict:
        data = {"name": route.name, "strategy": "weighted", "description": "", "enabled": "on",
                "session_affinity": "on", "context_window_fallback": "on", "hosted_tools": "map",
                "prompt_cache": "on", "prompt_cache_ttl": "5m", "response_cache_ttl": 3600,
                "response_cache_max_entries": 1000}
        for prefix, total in (("targets", 0), ("rules", 1)):
            data.update({f"{prefix}-TOTAL_FORMS": total, f"{prefix}-INITIAL_FORMS": 0,
                         f"{prefix}-MIN_NUM_FORMS": 0, f"{prefix}-MAX_NUM_FORMS": 1000})
        data.update({f"rules-0-{k}": v for k, v in {"order": 0, "name": "side", "enabled": "on",
                                                     "target_route": "", "target_model": "", **rule}.items()})
        return data

    def test_rules_are_edited_inline_and_validated(self, admin_client):
        cheap = world.provider("http://cheap.invalid/v1", model="mini")
        r = world.route([])
        url = f"/admin/routing/route/{r.id}/change/"
        page = admin_client.get(url).content.decode()
        assert 'id="rules-group"' in page and "session_affinity" in page and 'name="hosted_tools"' in page
        bad = admin_client.post(url, self.form(r, conditions='{"side_cal": true}', target_provider=cheap.id))
        assert bad.status_code == 200 and "unknown condition `side_cal`" in bad.content.decode()
        assert not r.rules.exists()
        good = admin_client.post(url, self.form(r, conditions='{"side_call": true}', target_provider=cheap.id))
        assert good.status_code == 302
        rule = r.rules.get()
        assert rule.conditions == {"side_call": True} and rule.target_provider == cheap
        r.refresh_from_db()
        assert r.strategy == "weighted"


@pytest.mark.usefixtures("rendered")
class TestRouteTester:
    def post(self, client, **data):
        return client.post("/admin/routing/route/tester/", {"format": "anthropic_messages", "headers": "",
                                                              "key": "", "model": "", **data})

    def test_it_needs_a_staff_login(self):
        r = Client(HTTP_HOST="localhost").get("/admin/routing/route/tester/")
        assert r.status_code == 302 and "/admin/login/" in r["location"]

    def test_the_form_opens_from_a_route(self, admin_client, setup):
        r = admin_client.get(f"/admin/routing/route/tester/?model={setup[2].name}")
        assert r.status_code == 200 and setup[2].name in r.content.decode()
        assert "tester/?model=" in admin_client.get("/admin/routing/route/").content.decode()

    def test_a_claude_code_title_call_shows_its_rule_and_chain(self, admin_client, setup):
        strong, cheap, agents = setup
        world.rule(agents, "side-calls", {"side_call": True}, target_provider=cheap)
        world.rule(agents, "images", {"has_images": True}, order=1, target_provider=strong)
        body = json.loads(CC_TITLE.read_text())["body"]
        r = self.post(admin_client, body=json.dumps(body), model=agents.name,
                      headers="X-Claude-Code-Session-Id: abc\nx-app: cli")
        assert r.status_code == 200
        result = r.context["result"]
        assert result["rule"] == "side-calls" and result["route"] == agents.name
        assert [c["provider"] for c in result["candidates"]] == [cheap.name, strong.name]
        assert result["features"]["client"] == "claude-code" and result["features"]["side_call"] is True
        assert [(x["name"], x["outcome"]) for x in result["rules"]] == [("side-calls", "matches"),
                                                                        ("images", "fails on has_images")]
        page = r.content.decode()
        assert "side-calls" in page and "tester-candidates" in page

    def test_the_key_s_allow_list_applies(self, admin_client, setup):
        strong, cheap, agents = setup
        other = world.route([(cheap, "mini")])
        _, plaintext = key_issue(username="bob", name="bob laptop")
        key = VirtualKey.objects.get(prefix=plaintext[:10])
        key.allowed_routes.set([other])
        r = self.post(admin_client, format="openai_chat", model=agents.name, key=str(key.id),
                      body=json.dumps({"model": agents.name, "messages": [{"role": "user", "content": "hi"}]}))
        assert r.status_code == 200
        assert r.context["result"]["error"].startswith("403 permission")

    def test_bad_json_is_a_form_error(self, admin_client, setup):
        r = self.post(admin_client, body="{not json")
        assert r.status_code == 200 and "Not valid JSON" in r.content.decode()


class TestHealthAdmin:
    def test_the_list_shows_status_and_latency_at_a_glance(self, admin_client, setup):
        strong, cheap, agents = setup
        ProviderHealth.objects.create(provider=strong, status="down", last_error="ConnectError on GET /v1/models")
        ProviderHealth.objects.create(provider=cheap, status="up", latency_ms=123.4, error_rate=0.1)
        # searched by name: the list is paginated and other tests add health rows too
        down = admin_client.get("/admin/routing/providerhealth/", {"q": strong.name}).content.decode()
        up = admin_client.get("/admin/routing/providerhealth/", {"q": cheap.name}).content.decode()
        assert "#c62828" in down and "#2e7d32" in up  # red down, green up
        assert "123 ms" in up and "10%" in up and "ConnectError on GET /v1/models" in down
