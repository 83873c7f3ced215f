"""Realistic usage rows for the reports benchmark: `generate_usage --rows 1000000`.

Users in teams (Django groups) with one or two keys each, agent sessions of a few to
a few hundred turns, several routes/providers/models with their prices, some errors,
retries and fallbacks, count_tokens estimates, spread over `--days` with a working-hours
rhythm. Rows go in through the usage recorder's own INSERT (fast, idempotent)."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta, timezone

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from gateway.keys import display_prefix, generate_key, hash_key
from gateway.models import VirtualKey
from gateway.usage import UsageRecorder

# (route, provider, model, input $/1M, output $/1M)
TARGETS = [
    ("default", "anthropic", "claude-sonnet-4-5", 3.0, 15.0),
    ("default", "openai", "gpt-5", 1.25, 10.0),
    ("fast", "openai", "gpt-5-mini", 0.25, 2.0),
    ("fast", "anthropic", "claude-haiku-4-5", 1.0, 5.0),
    ("strong", "anthropic", "claude-opus-4-1", 15.0, 75.0),
    ("local", "ollama", "qwen3-coder:30b", 0.0, 0.0),
    ("cheap", "openrouter", "deepseek/deepseek-chat", 0.27, 1.1),
    ("azure", "azure", "gpt-4.1", 2.0, 8.0),
]
WEIGHTS = [30, 20, 15, 10, 3, 8, 8, 6]
CLIENTS = ["goose", "claude-code", "codex", "opencode", "aider"]


class Command(BaseCommand):
    help = "Insert realistic UsageRecords for the reports benchmark."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=100_000)
        parser.add_argument("--days", type=int, default=60)
        parser.add_argument("--users", type=int, default=200)
        parser.add_argument("--seed", type=int, default=13)

    def handle(self, *args, rows: int, days: int, users: int, seed: int, **options):
        rng = random.Random(seed)
        started = time.time()
        keys = self._people(users, rng)
        end = datetime.now(timezone.utc)
        start = end - timedelta(days=days)
        span = (end - start).total_seconds()
        batch, written, session = [], 0, None
        turns_left = 0
        while written < rows:
            if turns_left <= 0:  # a new agent session: one developer, one key, one route mostly
                user_id, key_id = rng.choice(keys)
                moment = start + timedelta(seconds=_working_hours(rng, span))
                session = f"sess-{rng.getrandbits(48):012x}"
                turns_left = min(int(rng.paretovariate(1.2) * 5), 400)  # a long tail, capped
                target = rng.choices(TARGETS, WEIGHTS)[0]
            turns_left -= 1
            moment += timedelta(seconds=rng.uniform(2, 90))
            if moment >= end:  # the session runs into the present: it ends here
                turns_left = 0
                continue
            batch.append(_row(rng, f"gen-{seed}-{written:09d}", moment, user_id, key_id, target, session))
            written += 1
            if len(batch) == 5000:
                UsageRecorder._write(batch)
                batch = []
        if batch:
            UsageRecorder._write(batch)
        self.stdout.write(f"{written} usage rows in {time.time() - started:.1f} s")

    @staticmethod
    def _people(count: int, rng: random.Random) -> list[tuple[int, int]]:
        teams = [
            Group.objects.get_or_create(name=name)[0]
            for name in ("platform", "web", "data", "mobile", "infra")
        ]
        keys = []
        for i in range(count):
            user, _ = get_user_model().objects.get_or_create(username=f"dev{i:03d}")
            user.groups.add(teams[i % len(teams)])
            for name in ("laptop", "ci")[: 1 + (i % 3 == 0)]:
                plaintext = generate_key()
                key = VirtualKey.objects.create(
                    user=user, name=name, prefix=display_prefix(plaintext), key_hash=hash_key(plaintext)
                )
                keys.append((user.id, key.id))
        return keys


def _working_hours(rng: random.Random, span: float) -> float:
    """A moment weighted towards weekday working hours (UTC)."""
    while True:
        offset = rng.uniform(0, span)
        hour = (offset / 3600) % 24
        if 8 <= hour < 19 or rng.random() < 0.15:
            return offset


def _row(rng, request_id, moment, user_id, key_id, target, session) -> dict:
    route, provider, model, input_price, output_price = target
    roll = rng.random()
    status, error_type, attempts, chain = (
        200,
        "",
        1,
        [{"provider": provider, "model": model, "status": 200, "ms": 0}],
    )
    endpoint = "chat.completions" if provider != "anthropic" else "messages"
    prompt, completion = int(rng.lognormvariate(9, 0.9)), int(rng.lognormvariate(6, 1))
    cached = int(prompt * rng.uniform(0, 0.8))
    if roll < 0.02:
        status, error_type = rng.choice(
            [(429, "rate_limited"), (502, "upstream_error"), (504, "timeout"), (400, "invalid_request")]
        )
        completion = cached = 0
        prompt = 0 if status != 400 else prompt
        chain = [{"provider": provider, "model": model, "status": status, "error": error_type, "ms": 0}]
    elif roll < 0.04:  # served by the next target
        other = TARGETS[(TARGETS.index(target) + 1) % len(TARGETS)]
        attempts = 2
        chain = [
            {"provider": provider, "model": model, "status": 502, "error": "upstream_error", "ms": 0},
            {"provider": other[1], "model": other[2], "status": 200, "ms": 0},
        ]
        route, provider, model, input_price, output_price = other
    elif roll < 0.05:  # a retry on the same target
        attempts = 2
        chain = [
            {"provider": provider, "model": model, "status": 429, "error": "rate_limited", "ms": 0},
            {"provider": provider, "model": model, "status": 200, "ms": 0},
        ]
    elif roll < 0.06:  # Claude Code's count_tokens, estimated by the gateway
        endpoint, provider, model, chain = "count_tokens", "junction", "o200k-estimate", []
        completion = cached = 0
        attempts, input_price, output_price = 0, 0.0, 0.0
    written = int((prompt - cached) * rng.uniform(0, 0.3)) if provider == "anthropic" and status == 200 else 0
    latency = rng.lognormvariate(8, 0.7) if status == 200 else rng.uniform(50, 30000)
    # Cache reads at a tenth of the input price, writes at 1.25 times (Anthropic's rates).
    cost = ((prompt - cached - written) * input_price + cached * input_price * 0.1
            + written * input_price * 1.25 + completion * output_price) / 1e6
    cache_saved = (cached * input_price * 0.9 - written * input_price * 0.25) / 1e6
    hit = status == 200 and attempts == 1 and rng.random() < 0.03  # the response cache answered
    saved = cost if hit else 0.0
    if hit:
        cost = cache_saved = 0.0
        latency, chain, attempts = rng.uniform(1, 5), [], 0
    return {
        "request_id": request_id,
        "created_at": moment,
        "key_id": key_id,
        "user_id": user_id,
        "endpoint": endpoint,
        "requested_model": route,
        "route": route,
        "rule": "",
        "candidates": [],
        "provider": provider,
        "model": model,
        "status": status,
        "error_type": error_type,
        "error_message": "",
        "stream": status == 200,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_tokens": cached,
        "cache_write_tokens": written,
        "reasoning_tokens": 0,
        "usage_estimated": provider == "junction",
        "cost_usd": round(cost, 8),
        "latency_ms": round(latency, 3),
        "ttft_ms": round(latency * 0.2, 3) if status == 200 else None,
        "attempts": attempts,
        "attempt_chain": chain,
        "session_id": session,
        "client_disconnected": False,
        "cache_hit": hit,
        "saved_usd": round(saved, 8),
        "cache_saved_usd": round(cache_saved, 8),
    }
