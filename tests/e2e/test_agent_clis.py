"""The real agent CLIs (Codex, Claude Code, opencode; pinned in tests/agent_clis/package.json,
installed into .cache/agents by `make agent-clis`) run headless through the gateway against the
fake upstream of every provider type. A run passes when the CLI exits 0 after a turn in which the
model (the fake's `mock:agent_turn`) called the CLI's shell tool and the CLI sent the tool's
output back, and the gateway recorded usage for every request the CLI made.

The CLIs never reach the internet: telemetry, update checks and model catalogues are off, and
HTTP(S)_PROXY points at a closed loopback port (NO_PROXY covers the gateway). When the whole
matrix ran, the README's compatibility table is rewritten from the results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import close_old_connections

from gateway.models import UsageRecord
from gateway.services import key_issue
from tests.environment import ROOT
from tests.fakes import bedrock as fake_bedrock_module
from tests.fakes.base import AGENT_MARKER

from . import world

AGENTS_DIR = ROOT / ".cache" / "agents"
BIN = AGENTS_DIR / "node_modules" / ".bin"
CLI_TIMEOUT = 120
README = ROOT / "README.md"
TABLE_START, TABLE_END = "<!-- agent-matrix:start -->", "<!-- agent-matrix:end -->"
PROMPT = f"Run the shell command `echo {AGENT_MARKER}` and tell me what it printed."


@dataclass(frozen=True)
class Upstream:
    label: str
    fake: str  # fixture name
    type: str
    model: str  # the fake's model id with the agent_turn behaviour
    path: str = ""
    fields: dict = field(default_factory=dict)
    generate: tuple[str, ...] = ()  # upstream paths that are generation calls (one UsageRecord each)


UPSTREAMS = {
    "anthropic": Upstream(
        "Anthropic", "fake_anthropic", "anthropic", "mock:agent_turn", generate=("/v1/messages",)
    ),
    "openai-chat": Upstream(
        "OpenAI chat-only (`wire_api: chat`)",
        "fake_openai",
        "openai",
        "mock:agent_turn",
        "/v1",
        {"wire_api": "chat"},
        ("/v1/chat/completions",),
    ),
    "openai-responses": Upstream(
        "OpenAI Responses",
        "fake_openai",
        "openai",
        "mock:agent_turn",
        "/v1",
        {"wire_api": "responses"},
        ("/v1/responses",),
    ),
    "ollama": Upstream(
        "Ollama", "fake_ollama", "ollama", "qwen2.5-coder:14b#agent_turn", "", {"api_key": ""}, ("/api/chat",)
    ),
    "bedrock": Upstream(
        "Bedrock",
        "fake_bedrock",
        "bedrock",
        "anthropic.claude-sonnet-4-v1:0#agent_turn",
        "",
        {
            "api_key": "",
            "region": fake_bedrock_module.REGION,
            "aws_access_key_id": fake_bedrock_module.ACCESS_KEY,
            "aws_secret_access_key": fake_bedrock_module.SECRET_KEY,
        },
        ("/converse", "/converse-stream"),
    ),
}
CLIENTS = {
    "codex": "Codex CLI 0.169.0 (Responses API)",
    "claude": "Claude Code 2.1.332 (Anthropic Messages)",
    "opencode": "opencode 1.18.33 (OpenAI chat, `@ai-sdk/openai-compatible`)",
}
RESULTS: dict[tuple[str, str], str] = {}


def _offline_env(home: Path, gateway_url: str) -> dict:
    """A clean environment: own HOME, no way out but loopback, no telemetry or update checks."""
    closed = "http://127.0.0.1:9"  # discard port, nothing listens: any egress attempt fails at once
    return {
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "TERM": "dumb",
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
        "CI": "1",
        "HTTP_PROXY": closed,
        "HTTPS_PROXY": closed,
        "http_proxy": closed,
        "https_proxy": closed,
        "ALL_PROXY": closed,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local/state"),
    }


def codex_command(home: Path, gateway_url: str, key: str, model: str) -> tuple[list[str], dict]:
    codex_home = home / ".codex"
    codex_home.mkdir(exist_ok=True)
    # As the README tells users, plus everything that would phone home switched off.
    (codex_home / "config.toml").write_text(f'''
model = "{model}"
model_provider = "junction"
check_for_update_on_startup = false

[model_providers.junction]
name = "Junction"
base_url = "{gateway_url}/v1"
env_key = "JUNCTION_API_KEY"
wire_api = "responses"

[analytics]
enabled = false

[feedback]
enabled = false
''')
    env = {**_offline_env(home, gateway_url), "CODEX_HOME": str(codex_home), "JUNCTION_API_KEY": key}
    # Root in a container: Codex's own sandbox cannot start here, the tool is a harmless echo.
    return [
        str(BIN / "codex"),
        "exec",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        "--color",
        "never",
        PROMPT,
    ], env


def claude_command(home: Path, gateway_url: str, key: str, model: str) -> tuple[list[str], dict]:
    env = {
        **_offline_env(home, gateway_url),
        "ANTHROPIC_BASE_URL": gateway_url,
        "ANTHROPIC_API_KEY": key,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_BUG_COMMAND": "1",
    }
    # --dangerously-skip-permissions is refused as root: allow just the Bash tool instead.
    return [
        str(BIN / "claude"),
        "-p",
        PROMPT,
        "--model",
        model,
        "--allowedTools",
        "Bash",
        "--output-format",
        "text",
    ], env


def opencode_command(home: Path, gateway_url: str, key: str, model: str) -> tuple[list[str], dict]:
    config = {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "permission": {"bash": "allow", "edit": "allow"},
        "provider": {
            "junction": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Junction",
                "options": {"baseURL": f"{gateway_url}/v1", "apiKey": key},
                "models": {model: {"tool_call": True}},
            }
        },
        "model": f"junction/{model}",
        "small_model": f"junction/{model}",
    }
    env = {
        **_offline_env(home, gateway_url),
        "OPENCODE_CONFIG_CONTENT": json.dumps(config),
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
        "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
        "OPENCODE_DISABLE_SHARE": "1",
    }
    return [str(BIN / "opencode"), "run", "--model", f"junction/{model}", PROMPT], env


COMMANDS = {"codex": codex_command, "claude": claude_command, "opencode": opencode_command}


@pytest.fixture(scope="session")
def agent_clis():
    if not (BIN / "codex").exists() or not (BIN / "claude").exists() or not (BIN / "opencode").exists():
        if shutil.which("npm") is None or shutil.which("node") is None:
            pytest.skip("node/npm are not installed (.ci/run installs them): the real agent CLIs cannot run")
        if shutil.which("make") is not None:
            subprocess.run(["make", "-s", "agent-clis"], cwd=ROOT, check=True, timeout=600)
        else:
            AGENTS_DIR.mkdir(parents=True, exist_ok=True)
            for name in ("package.json", "package-lock.json"):
                shutil.copy(ROOT / "tests" / "agent_clis" / name, AGENTS_DIR / name)
            subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=AGENTS_DIR,
                check=True,
                timeout=600,
            )
    return BIN


@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    """One HOME per CLI for the whole matrix: opencode spends seconds setting up its state
    database in a fresh one (the config is rewritten for every run)."""
    return {client: tmp_path_factory.mktemp(f"home-{client}") for client in CLIENTS}


@pytest.fixture(scope="module", autouse=True)
def compatibility_table():
    yield
    if len(RESULTS) == len(CLIENTS) * len(UPSTREAMS):
        write_table(RESULTS)


def records_for_key(key_id: int, count: int, timeout: float = 10.0) -> list[UsageRecord]:
    deadline = time.time() + timeout
    rows: list[UsageRecord] = []
    while time.time() < deadline:
        close_old_connections()
        rows = list(UsageRecord.objects.filter(key_id=key_id).order_by("created_at"))
        if len(rows) >= count:
            time.sleep(0.6)  # one more flush window: anything recorded twice would show up now
            close_old_connections()
            return list(UsageRecord.objects.filter(key_id=key_id).order_by("created_at"))
        time.sleep(0.1)
    return rows


@pytest.mark.parametrize("upstream", list(UPSTREAMS))
@pytest.mark.parametrize("client", list(CLIENTS))
def test_a_real_agent_cli_completes_a_tool_turn(
    request, agent_clis, gateway, homes, tmp_path, client, upstream
):
    spec = UPSTREAMS[upstream]
    fake = request.getfixturevalue(spec.fake)
    fake.reset()
    provider = world.provider(fake.url + spec.path, type=spec.type, model=spec.model, **spec.fields)
    route = world.unique(f"agent-{upstream}")
    world.route(route, [(provider, spec.model)])
    key_row, key = key_issue(username="agent-cli", name=world.unique(client))
    command, env = COMMANDS[client](homes[client], gateway.url, key, route)
    work = tmp_path / "work"
    work.mkdir()
    RESULTS[(client, upstream)] = "fail"
    proc = subprocess.run(
        command,
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    output = f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, output
    calls = [r for r in fake.requests if r.method == "POST" and r.path.endswith(spec.generate)]
    # The CLI ran the tool the model called and sent its output back in a later request.
    # The marker is in the prompt; a request that also holds the tool call's arguments and the
    # tool's output holds it at least twice more.
    seen = [r.raw.count(AGENT_MARKER.encode()) for r in calls]
    answered = [n for n in seen if n >= min(seen) + 2]
    assert len(calls) >= 2 and answered, (
        f"{len(calls)} upstream calls, none with the tool output\n{output}\n{describe(calls)}"
    )
    records = records_for_key(key_row.id, len(calls))
    assert len(records) == len(calls), f"{len(records)} usage records for {len(calls)} upstream calls"
    for rec in records:
        assert rec.status == 200 and rec.provider == provider.name, (
            rec.status,
            rec.error_message,
            describe(calls),
        )
        assert rec.prompt_tokens > 0 and rec.completion_tokens > 0
    RESULTS[(client, upstream)] = "pass"


def describe(calls) -> str:
    """What each upstream call offered and ended with, for a failure message."""
    lines = []
    for r in calls:
        body = r.body or {}
        tools = body.get("tools") or (body.get("toolConfig") or {}).get("tools") or []
        names = [
            t.get("name")
            or (t.get("function") or {}).get("name")
            or (t.get("toolSpec") or {}).get("name")
            or t.get("type")
            for t in tools
        ]
        tail = (body.get("messages") or body.get("input") or [None])[-1]
        beta = r.headers.get("anthropic-beta", "")
        lines.append(f"{r.path} beta={beta} tools={names} last={json.dumps(tail)[:200]}")
    return "\n".join(lines)


def write_table(results: dict[tuple[str, str], str]) -> None:
    """Rewrite the README's compatibility table from this run's results."""
    mark = {"pass": "✅ tool turn", "fail": "❌"}
    lines = [
        "| client \\ provider type | " + " | ".join(u.label for u in UPSTREAMS.values()) + " |",
        "|---|" + "---|" * len(UPSTREAMS),
    ]
    for client, label in CLIENTS.items():
        lines.append(f"| {label} | " + " | ".join(mark[results[(client, u)]] for u in UPSTREAMS) + " |")
    lines.append("")
    lines.append(
        f"_Written by `tests/e2e/test_agent_clis.py` on {time.strftime('%Y-%m-%d')}: each cell is a "
        "headless run of the real CLI through Junction against that provider type's fake upstream._"
    )
    text = README.read_text()
    if TABLE_START in text and TABLE_END in text:
        head, _, rest = text.partition(TABLE_START)
        _, _, tail = rest.partition(TABLE_END)
        README.write_text(head + TABLE_START + "\n" + "\n".join(lines) + "\n" + TABLE_END + tail)


def test_a_client_that_hangs_up_after_the_final_event_got_a_whole_answer(gateway, fake_anthropic):
    """Codex closes the connection on response.completed; an upstream that had not closed its
    stream yet (here: lingers 2 s) must not turn that into a 499 on the UsageRecord."""
    import httpx

    provider = world.provider(fake_anthropic.url, type="anthropic")
    key = world.alice_key()
    body = {"model": f"{provider.name}/mock:linger=2", "input": "hi", "stream": True}
    started = time.time()
    with httpx.stream(
        "POST",
        gateway.url + "/v1/responses",
        json=body,
        timeout=30,
        headers={"authorization": f"Bearer {key}"},
    ) as r:
        assert r.status_code == 200
        request_id = r.headers["x-request-id"]
        for line in r.iter_lines():
            if line == "event: response.completed":
                break
    assert time.time() - started < 1.5  # the final event came before the upstream closed
    record = world.wait_record(request_id)
    assert (record.status, record.error_type) == (200, "")
    assert record.client_disconnected and record.prompt_tokens > 0 and record.completion_tokens > 0
