"""The Bedrock fake's prompt cache (tests/fakes/bedrock.py) on its own: what a cachePoint
writes, what a later request reads, the per-model minimum, the 4-point limit."""

from __future__ import annotations

from tests.fakes.base import Behaviour
from tests.fakes.bedrock import FakeBedrock, converse_blocks

LONG = "x" * 6000  # ~1,500 tokens: above the 1,024-token minimum, below Haiku 4.5's 4,096
POINT = {"cachePoint": {"type": "default"}}


def body(*turns: str, point: bool = True) -> dict:
    messages, role = [], "user"
    for text in turns:
        messages.append({"role": role, "content": [{"text": text}]})
        role = "assistant" if role == "user" else "user"
    system = [{"text": LONG}] + ([POINT] if point else [])
    return {"system": system, "messages": messages}


def usage(fake: FakeBedrock, request: dict, model: str = "anthropic.claude-sonnet-4-v1:0") -> dict:
    behaviour = Behaviour.parse("mock")
    behaviour.model = model
    return fake.usage(request, behaviour, 5)


def test_a_cache_point_writes_then_a_later_request_reads():
    fake = FakeBedrock()
    first = usage(fake, body("hi"))
    assert first["cacheReadInputTokens"] == 0 and first["cacheWriteInputTokens"] > 1024
    second = usage(fake, body("hi", "hello", "more"))
    assert second["cacheReadInputTokens"] == first["cacheWriteInputTokens"]
    assert second["cacheWriteInputTokens"] == 0
    assert second["totalTokens"] == second["inputTokens"] + second["cacheReadInputTokens"] + 5


def test_no_cache_point_no_cache_and_the_minimum_per_model():
    fake = FakeBedrock()
    plain = usage(fake, body("hi", point=False))
    assert "cacheReadInputTokens" not in plain or plain["cacheReadInputTokens"] == 0
    haiku = usage(fake, body("hi"), "anthropic.claude-haiku-4-5-20251001-v1:0")
    assert haiku["cacheWriteInputTokens"] == 0  # below 4,096 tokens: not cached
    assert usage(fake, body("hi"), "anthropic.claude-haiku-4-5-20251001-v1:0")["cacheReadInputTokens"] == 0


def test_cache_point_marks_the_block_before_it():
    blocks = converse_blocks({"toolConfig": {"tools": [{"toolSpec": {"name": "t"}}, POINT]},
                              "system": [{"text": "s"}], "messages": [{"role": "user", "content": [
                                  {"text": "u"}, {"cachePoint": {"type": "default", "ttl": "1h"}}]}]})
    assert [b[2] for b in blocks] == [{"type": "default"}, None, {"type": "default", "ttl": "1h"}]
