"""Config typos are errors naming the file, the path and the closest valid key (issue 11)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from gateway.config_file import ConfigError, import_config, load
from providers.models import Provider
from routing.models import Route

from . import world

BASE = """
providers:
  - name: {a}
    type: openai
    base_url: http://127.0.0.1:9/v1
  - name: {b}
    type: ollama
  - name: {c}
    type: anthropic
{extra}
"""


def _names():
    return world.unique("cfg-a"), world.unique("cfg-b"), world.unique("cfg-c")


@pytest.mark.parametrize(
    "extra,expected",
    [
        (
            "    first_token_timout: 30",
            "providers[2].first_token_timout: unknown key (did you mean `first_token_timeout`?)",
        ),
        ("    api_kye: sk-x", "providers[2].api_kye: unknown key (did you mean `api_key`?)"),
        (
            "    models: [{id: m, input_prise: 3}]",
            "providers[2].models[0].input_prise: unknown key (did you mean `input_price`?)",
        ),
        ("route:\n  - name: x\n    targets: [y]", "route: unknown key (did you mean `routes`?)"),
        (
            "routes:\n  - name: r\n    strategy: priorty\n    targets: []",
            "routes[0].strategy: unknown value `priorty` (did you mean `priority`?)",
        ),
        (
            "    wire_api: responess",
            "providers[2].wire_api: unknown value `responess` (did you mean `responses`?)",
        ),
        ("    connect_timeout: soon", "providers[2].connect_timeout: expected a number, got a string `soon`"),
        ("    enabled: [1]", "providers[2].enabled: expected true or false"),
        ("    extra_headers: [a, b]", "providers[2].extra_headers: expected a mapping, got a list"),
        (
            "routes:\n  - name: r\n    targets: [{provider: x, wieght: 2}]",
            "routes[0].targets[0].wieght: unknown key (did you mean `weight`?)",
        ),
        ("routing:\n  default: x\n  fallbak: y", "routing.fallbak: unknown key (did you mean `fallback`?)"),
    ],
)
def test_typos_are_errors_naming_the_file_path_and_closest_key(extra, expected):
    a, b, c = _names()
    with pytest.raises(ConfigError) as info:
        import_config(load(BASE.format(a=a, b=b, c=c, extra=extra)), source="config.yaml")
    assert f"config.yaml: {expected}" in str(info.value)
    assert not Provider.objects.filter(name__in=[a, b, c]).exists()  # nothing written


def test_an_unknown_provider_type_names_the_closest_type():
    expected = r"providers\[0\]\.type: unknown value `antropic` \(did you mean `anthropic`"
    with pytest.raises(ConfigError, match=expected):
        import_config(load("providers:\n  - name: x\n    type: antropic\n"), source="c.yaml")


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        text = "providers:\n  - name: x\n    type: openai\n    api_kye: a\n    modle: b\n"
        import_config(load(text), source="c.yaml")
    assert "api_kye" in str(info.value) and "modle" in str(info.value)


def test_a_valid_file_still_imports_with_env_strings_for_numbers(monkeypatch):
    monkeypatch.setenv("CFG_TIMEOUT", "12.5")
    a, b, c = _names()
    extra = (
        "    connect_timeout: ${CFG_TIMEOUT}\n"
        "    models: [m1, {id: m2, input_price: 3, context_window: 1000}]\n"
        f"routes:\n  - name: {a}-route\n    strategy: cost\n"
        f"    targets: [{a}, {{provider: {b}, weight: 2}}]"
    )
    import_config(load(BASE.format(a=a, b=b, c=c, extra=extra)), source="config.yaml")
    assert Provider.objects.get(name=c).connect_timeout == 12.5
    assert Route.objects.get(name=f"{a}-route").strategy == "cost"


def test_import_config_check_validates_without_writing(tmp_path):
    a, b, c = _names()
    good = tmp_path / "good.yaml"
    good.write_text(BASE.format(a=a, b=b, c=c, extra=""))
    out = io.StringIO()
    call_command("import_config", str(good), "--check", stdout=out)
    assert "valid" in out.getvalue() and not Provider.objects.filter(name=a).exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.format(a=a, b=b, c=c, extra="    first_token_timout: 3"))
    with pytest.raises(CommandError, match=r"bad.yaml: providers\[2\]\.first_token_timout"):
        call_command("import_config", str(bad), "--check", stdout=io.StringIO())
    # A reference to a provider that does not exist is found by --check too (the import runs, rolled back).
    dangling = tmp_path / "dangling.yaml"
    dangling.write_text(BASE.format(a=a, b=b, c=c, extra="routes:\n  - name: r\n    targets: [nowhere]"))
    with pytest.raises(CommandError, match="unknown provider"):
        call_command("import_config", str(dangling), "--check", stdout=io.StringIO())
    assert not Provider.objects.filter(name=a).exists()


def test_the_admin_provider_form_checks_extra_headers_the_same_way():
    from providers.admin import ProviderForm

    form = ProviderForm(
        data={
            "name": world.unique("form"),
            "type": "openai",
            "extra_headers": '{"x-a": [1]}',
            "connect_timeout": 5,
            "first_token_timeout": 60,
            "total_timeout": 600,
            "wire_api": "auto",
        }
    )
    assert not form.is_valid() and "extra_headers" in form.errors
    assert "expected a string" in str(form.errors["extra_headers"])
