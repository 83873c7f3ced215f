"""The admin in a real headless browser (Debian's chromium + chromium-driver) at 1400x900,
as a new admin uses it: the provider form shows the selected type's fields only, every
page fits the window without scrolling sideways, a new key comes in a monospace box with
a copy button, read-only models have no save buttons. Skipped (with the reason) where
chromium cannot run; screenshots go to a temp dir (printed)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from gateway.models import UsageRecord
from providers.models import ProviderModel

from . import world
from .test_report_pages_browser import _login, _shot, _wait
from .test_report_pages_browser import browser  # noqa: F401  (the module's chromium fixture)

WIDTH, HEIGHT = 1400, 900


@pytest.fixture
def window(browser, gateway):  # noqa: F811
    browser.set_window_size(WIDTH, HEIGHT)
    _login(browser, gateway)
    yield browser
    browser.set_window_size(1400, 1000)


def _visible(driver, element_id: str) -> bool:
    return driver.execute_script(
        "const e = document.getElementById(arguments[0]); return !!e && e.offsetParent !== null", element_id)


def _fits(driver) -> None:
    """Nothing wider than the window: neither the page nor a table's scroll box."""
    page = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert page[0] <= page[1], f"the page is {page[0]} px wide in a {page[1]} px window"
    wide = driver.execute_script(
        "return [...document.querySelectorAll('.tabular, .results, #changelist table, .inline-group')]"
        ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.className + ' ' + e.scrollWidth)")
    assert wide == [], wide


def _choose_type(driver, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", "id_type")).select_by_value(value)


def test_the_provider_form_shows_only_the_selected_types_fields(window, gateway):
    window.get(gateway.url + "/admin/providers/provider/add/")
    for field in ("id_api_key", "id_region", "id_api_version", "id_wire_api"):  # no type yet: all
        assert _visible(window, field), field
    assert not window.find_elements("name", "clear_api_key")  # nothing to clear on an add form
    labels = window.execute_script("return [...document.querySelectorAll('label')].map(l => l.textContent)")
    assert "API key:" in labels and "AWS access key ID:" in labels and "Api key:" not in labels

    _choose_type(window, "openai")
    assert _visible(window, "id_api_key") and _visible(window, "id_wire_api")
    assert not _visible(window, "id_api_version") and not _visible(window, "id_region")
    assert not _visible(window, "id_aws_access_key_id")
    _shot(window, "provider-add-openai")

    _choose_type(window, "azure")
    assert _visible(window, "id_api_version") and _visible(window, "id_api_key")
    assert not _visible(window, "id_region")

    _choose_type(window, "bedrock")
    assert _visible(window, "id_region") and _visible(window, "id_aws_secret_access_key")
    assert not _visible(window, "id_api_key") and not _visible(window, "id_wire_api")
    _shot(window, "provider-add-bedrock")


def test_the_provider_models_table_fits_1400_px_and_says_the_price_unit(window, gateway):
    provider = world.provider("http://127.0.0.1:9/v1", model="claude-sonnet-4-5-20250929")
    for model_id in ("claude-sonnet-4-5-20250929", "gpt-5.1-codex-max-preview", "qwen3-coder:480b-a35b"):
        ProviderModel.objects.create(
            provider=provider, model_id=model_id, deployment="prod-eastus-2", context_window=1_000_000,
            input_price="15.000000", output_price="75.000000", cache_read_price="1.500000",
            cache_write_price="18.750000", max_output_tokens=128_000)
    window.get(f"{gateway.url}/admin/providers/provider/{provider.id}/change/")
    _wait(lambda: window.find_elements("id", "models-group"))
    _shot(window, "provider-change-openai")
    _fits(window)
    headers = window.execute_script(
        "return [...document.querySelectorAll('#models-group th')].map(th => th.textContent.trim())")
    prices = [h for h in headers if "price" in h.lower()]
    assert len(prices) == 4 and all("USD per 1M tokens" in h for h in prices), headers
    # Azure deployments only on an Azure provider; switching the type shows the column.
    assert not _visible(window, "id_models-0-deployment")
    _choose_type(window, "azure")
    assert _visible(window, "id_models-0-deployment")
    _fits(window)
    # The clear checkbox on a change form with a stored key, labelled in words.
    clear = window.find_element("css selector", "label[for=id_clear_api_key]")
    assert clear.text == "Clear the stored API key"


def test_the_usage_list_and_other_pages_fit_the_window(window, gateway):
    user, _ = get_user_model().objects.get_or_create(username="browser-usage")
    for i in range(5):
        UsageRecord.objects.create(
            request_id=world.unique("fits"), created_at=timezone.now(), endpoint="chat.completions",
            user=user,
            route="default-route-name", provider="a-provider-with-a-rather-long-name",
            model="claude-sonnet-4-5-20250929", status=502 if i % 2 else 200, prompt_tokens=123_456,
            completion_tokens=7_890, cost_usd="0.123456", latency_ms=1234.5)
    window.get(gateway.url + "/admin/gateway/usagerecord/")
    headers = window.execute_script(
        "return [...document.querySelectorAll('#result_list thead th')].map(th => th.textContent.trim())")
    assert {"Cost (USD)", "Latency", "Status"} <= set(headers)
    _shot(window, "usage-list")
    _fits(window)
    for path in ("/admin/", "/admin/gateway/virtualkey/add/", "/admin/routing/route/",
                 "/admin/routing/providerhealth/", "/admin/gateway/budget/add/"):
        window.get(gateway.url + path)
        _fits(window)
    # The index: a dashboard that leads to the reports and the live view.
    window.get(gateway.url + "/admin/")
    links = window.execute_script("return [...document.querySelectorAll('#junction-dashboard a')]"
                                  ".map(a => a.getAttribute('href'))")
    assert "/reports/" in links and "/live/" in links
    assert window.title.endswith("| Junction") and "Django" not in window.page_source
    _shot(window, "index")


def test_a_new_key_is_shown_in_a_monospace_box_with_a_copy_button(window, gateway):
    from selenium.webdriver.support.ui import Select

    user = get_user_model().objects.create(username=world.unique("keyowner"))
    window.get(gateway.url + "/admin/gateway/virtualkey/add/")
    assert not window.find_elements("id", "id_revoked_at_0")  # a new key is not revoked
    assert window.find_element("css selector", "label[for=id_rpm_limit]").text == "RPM limit:"
    window.find_element("id", "id_name").send_keys("laptop")
    Select(window.find_element("id", "id_user")).select_by_visible_text(user.username)
    window.find_element("name", "_save").click()
    box = _wait(lambda: window.find_elements("id", "new-key"))[0]
    assert box.text.startswith("jk-")
    assert "mono" in box.value_of_css_property("font-family").lower()
    assert window.find_element("css selector", "button[data-copy=new-key]").is_displayed()
    assert "ANTHROPIC_BASE_URL=" + gateway.url in window.page_source
    _shot(window, "new-key")


def test_read_only_pages_have_no_save_buttons_and_the_budget_error_is_in_words(window, gateway):
    record = UsageRecord.objects.create(request_id=world.unique("ro"), created_at=timezone.now(),
                                        endpoint="messages", provider="p", model="m", status=200)
    window.get(f"{gateway.url}/admin/gateway/usagerecord/{record.id}/change/")
    assert not window.find_elements("name", "_save") and not window.find_elements("name", "_continue")
    from routing.models import ProviderHealth

    health = ProviderHealth.objects.create(provider=world.provider("http://127.0.0.1:9/v1"), status="down")
    window.get(gateway.url + "/admin/routing/providerhealth/")
    assert "/admin/routing/providerhealth/add/" not in window.page_source
    window.get(f"{gateway.url}/admin/routing/providerhealth/{health.id}/change/")
    assert not window.find_elements("name", "_save") and "down" in window.page_source
    window.get(gateway.url + "/admin/gateway/budget/add/")
    window.find_element("id", "id_amount_usd").send_keys("5")
    window.find_element("name", "_save").click()
    errors = _wait(lambda: window.find_elements("css selector", ".errornote, .errorlist"))
    text = " ".join(e.text for e in errors)
    assert "is violated" not in text and "choose one of them" in text
    assert window.find_element("css selector", "label[for=id_amount_usd]").text == "Amount (USD):"
    _shot(window, "budget-error")


def test_no_javascript_keeps_every_provider_field(gateway):
    """The script only hides: the server renders every type's fields."""
    user, _ = get_user_model().objects.get_or_create(username="browser-admin",
                                                     defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    page = client.get("/admin/providers/provider/add/").content.decode()
    for field in ("id_api_key", "id_region", "id_aws_access_key_id", "id_api_version", "id_wire_api"):
        assert f'id="{field}"' in page
    assert "display: none" not in page and "providers/provider_type.js" in page
