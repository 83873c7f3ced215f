"""The report pages in a real headless browser (Debian's chromium + chromium-driver):
the overview's chart renders, a drill-down reaches a request page, the live page
connects and shows a request as it happens. Screenshots go to a temp dir (printed)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from gateway.models import UsageRecord

from . import world
from .conftest import _required_binary

SHOTS = tempfile.mkdtemp(prefix="junction-screens-")


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        _required_binary(None, "chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (requirements-dev.txt)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--disable-gpu",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _login(browser, gateway):
    user, _ = get_user_model().objects.get_or_create(
        username="browser-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    browser.get(gateway.url + "/login/")
    browser.add_cookie({"name": "sessionid", "value": client.cookies["sessionid"].value, "path": "/"})


def _wait(predicate, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting in the browser")


def _shot(browser, name):
    path = os.path.join(SHOTS, name + ".png")
    browser.save_screenshot(path)
    print("screenshot:", path)


def test_the_overview_draws_its_chart_and_drills_down_to_a_request(browser, gateway):
    from selenium.webdriver.common.by import By

    provider = world.unique("browse")
    for i, model in enumerate(("sonnet", "gpt", "sonnet", "haiku")):
        UsageRecord.objects.create(
            request_id=f"{provider}-{i}",
            created_at=timezone.now(),
            endpoint="messages",
            provider=provider,
            model=model,
            status=200,
            attempts=1,
            prompt_tokens=1200,
            completion_tokens=300,
            cost_usd=f"0.0{i + 2}",
            session_id=f"{provider}-s",
            attempt_chain=[{"provider": provider, "model": model, "status": 200, "ms": 900}],
        )
    _login(browser, gateway)
    browser.get(f"{gateway.url}/reports/?range=24h&provider={provider}")
    canvas = browser.find_element(By.ID, "spend-chart")
    assert _wait(lambda: canvas.get_attribute("data-rendered")) == "3"  # three models stacked
    assert browser.execute_script("return Chart.getChart('spend-chart').data.datasets.length") == 3
    _shot(browser, "overview")
    browser.find_element(By.CSS_SELECTOR, ".card a.big").click()  # the spend number → its requests
    _wait(lambda: "/reports/requests/" in browser.current_url)
    links = browser.find_elements(By.CSS_SELECTOR, f"a[href^='/reports/requests/{provider}-']")
    assert len(links) == 4
    _shot(browser, "requests")
    links[0].click()
    _wait(lambda: "Attempts" in browser.page_source)
    assert f"{provider}-3" in browser.title or f"{provider}-3" in browser.page_source
    _shot(browser, "request")


def test_the_live_page_shows_a_request_as_it_happens(browser, gateway, fake_openai):
    from selenium.webdriver.common.by import By

    upstream = world.provider(fake_openai.url + "/v1")
    key = world.alice_key()
    _login(browser, gateway)
    browser.get(gateway.url + "/live/")
    _wait(lambda: browser.find_element(By.ID, "live-state").get_attribute("data-connected") == "1")
    assert browser.find_element(By.ID, "live-chart").get_attribute("data-rendered") == "1"
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": upstream.name, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    request_id = response.headers["x-request-id"]
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, f"tr[data-request-id='{request_id}']"))
    assert browser.find_element(By.ID, "live-count").text != "0"
    _shot(browser, "live")
