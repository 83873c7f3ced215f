"""`${VAR}` in the config file (gateway/config_file.py): an unset variable is an error that
names it, unless the file gives a default (`${VAR:-default}`, `${VAR:-}` for empty)."""

from __future__ import annotations

import pytest

from gateway.config_file import ConfigError, load

TEXT = """
providers:
  - name: cloud
    type: openai
    api_key: ${JUNCTION_T_KEY}
    base_url: ${JUNCTION_T_URL:-https://api.openai.com/v1}
    extra_headers: {x-team: "${JUNCTION_T_TEAM:-}"}
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("JUNCTION_T_KEY", "JUNCTION_T_URL", "JUNCTION_T_TEAM", "JUNCTION_T_OTHER"):
        monkeypatch.delenv(name, raising=False)


def test_an_unset_variable_is_an_error_naming_it():
    with pytest.raises(ConfigError) as exc:
        load(TEXT)
    assert "JUNCTION_T_KEY" in str(exc.value)
    assert "JUNCTION_T_URL" not in str(exc.value) and "JUNCTION_T_TEAM" not in str(exc.value)  # defaults


def test_every_unset_variable_is_named_once():
    with pytest.raises(ConfigError) as exc:
        load("a: ${JUNCTION_T_KEY}\nb:\n  - ${JUNCTION_T_OTHER}\n  - x${JUNCTION_T_KEY}y\n")
    message = str(exc.value)
    assert "JUNCTION_T_KEY" in message and "JUNCTION_T_OTHER" in message
    assert message.count("JUNCTION_T_KEY") == 1


def test_defaults_and_explicit_empty(monkeypatch):
    monkeypatch.setenv("JUNCTION_T_KEY", "sk-1")
    provider = load(TEXT)["providers"][0]
    assert provider["api_key"] == "sk-1"
    assert provider["base_url"] == "https://api.openai.com/v1"
    assert provider["extra_headers"] == {"x-team": ""}


def test_a_set_variable_wins_over_the_default(monkeypatch):
    monkeypatch.setenv("JUNCTION_T_KEY", "sk-1")
    monkeypatch.setenv("JUNCTION_T_URL", "http://127.0.0.1:9/v1")
    assert load(TEXT)["providers"][0]["base_url"] == "http://127.0.0.1:9/v1"


def test_set_but_empty_uses_the_default_like_the_shell(monkeypatch):
    monkeypatch.setenv("JUNCTION_T_KEY", "sk-1")
    monkeypatch.setenv("JUNCTION_T_URL", "")
    assert load(TEXT)["providers"][0]["base_url"] == "https://api.openai.com/v1"
