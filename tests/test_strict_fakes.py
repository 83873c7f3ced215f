"""The fakes refuse what the real APIs refuse (rules and sources: tests/fakes/README.md).
Each rule: a request breaking it is refused with the provider's message, and the same
request made right is accepted, straight against the fake's HTTP server."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.fakes.anthropic import SIGNATURE, THINKING_SENT, sign
from tests.fakes.bedrock import check_conversation

USER = {"role": "user", "content": "hi"}


# ------------------------------------------------------------------ OpenAI chat


def openai_post(fake_openai, body, key="sk-test", path="/v1/chat/completions"):
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(fake_openai.url + path, json=body, headers=headers)


def test_openai_needs_a_bearer_key(fake_openai):
    assert openai_post(fake_openai, {"model": "mock", "messages": [USER]}, key="").status_code == 401
    assert openai_post(fake_openai, {"model": "mock", "messages": [USER]}).status_code == 200


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"messages": [USER]}, "model"),
        ({"model": "mock", "messages": []}, "too short"),
        ({"model": "mock", "messages": [{"role": "human", "content": "x"}]}, "Supported values"),
        (
            {"model": "mock", "messages": [USER, {"role": "tool", "tool_call_id": "call_1", "content": "x"}]},
            "must be a response to a preceeding message",
        ),
        (
            {
                "model": "mock",
                "messages": [
                    USER,
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                        ],
                    },
                    USER,
                ],
            },
            "did not have response messages: call_1",
        ),
        ({"model": "o3-mini", "messages": [USER], "max_tokens": 100}, "Use 'max_completion_tokens'"),
        ({"model": "gpt-5", "messages": [USER], "max_tokens": 100}, "Use 'max_completion_tokens'"),
        ({"model": "gpt-4o", "messages": [USER], "max_tokens": 32000}, "at most 16384 completion tokens"),
        (
            {"model": "gpt-4o", "messages": [USER], "stream_options": {"include_usage": True}},
            "only allowed when",
        ),
    ],
)
def test_openai_chat_rules(fake_openai, body, needle):
    r = openai_post(fake_openai, body)
    assert r.status_code == 400 and needle in r.json()["error"]["message"], r.text


@pytest.mark.parametrize(
    "body",
    [
        {"model": "o3-mini", "messages": [USER], "max_completion_tokens": 100},
        {"model": "gpt-4o", "messages": [USER], "max_tokens": 16384},
        {
            "model": "mock",
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
                USER,
            ],
        },
    ],
)
def test_openai_chat_accepts_the_right_form(fake_openai, body):
    assert openai_post(fake_openai, body).status_code == 200


def test_responses_rules(fake_openai):
    bad = {"model": "mock", "input": [{"type": "function_call_output", "call_id": "call_9", "output": "x"}]}
    r = openai_post(fake_openai, bad, path="/v1/responses")
    assert r.status_code == 400 and "No tool call found" in r.json()["error"]["message"]
    r = openai_post(
        fake_openai, {"model": "gpt-4o", "input": "hi", "max_output_tokens": 20000}, path="/v1/responses"
    )
    assert r.status_code == 400
    good = {
        "model": "mock",
        "input": [
            {"type": "function_call", "call_id": "call_9", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_9", "output": "x"},
        ],
    }
    assert openai_post(fake_openai, good, path="/v1/responses").status_code == 200


# ------------------------------------------------------------------ Anthropic


def anthropic_post(fake_anthropic, body):
    return httpx.post(
        fake_anthropic.url + "/v1/messages",
        json=body,
        headers={"x-api-key": "sk-ant", "anthropic-version": "2023-06-01"},
    )


def tool_use(ident="toolu_1"):
    return {"role": "assistant", "content": [{"type": "tool_use", "id": ident, "name": "f", "input": {}}]}


def tool_result(ident="toolu_1"):
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": ident, "content": "ok"}]}


@pytest.mark.parametrize(
    "messages, needle",
    [
        ([USER, tool_use(), USER], "without `tool_result` blocks immediately after: toolu_1"),
        ([USER, {"role": "assistant", "content": "x"}, tool_result()], "unexpected `tool_use_id`"),
        ([USER, tool_use("toolu_1"), tool_result("toolu_2")], "unexpected `tool_use_id`"),
        (
            [
                USER,
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "I changed this", "signature": SIGNATURE},
                        {"type": "text", "text": "x"},
                    ],
                },
                USER,
            ],
            "Invalid `signature`",
        ),
    ],
)
def test_anthropic_turn_rules(fake_anthropic, messages, needle):
    r = anthropic_post(fake_anthropic, {"model": "mock", "max_tokens": 100, "messages": messages})
    assert r.status_code == 400 and needle in r.json()["error"]["message"], r.text


def test_anthropic_accepts_paired_tools_signed_thinking_and_combined_turns(fake_anthropic):
    thinking = {"type": "thinking", "thinking": THINKING_SENT, "signature": sign(THINKING_SENT)}
    messages = [
        USER,
        USER,  # consecutive user turns are combined, as the API documents
        {"role": "assistant", "content": [thinking, tool_use()["content"][0]]},
        tool_result(),
        USER,
    ]
    r = anthropic_post(fake_anthropic, {"model": "mock", "max_tokens": 100, "messages": messages})
    assert r.status_code == 200, r.text


def test_anthropic_output_limit(fake_anthropic):
    r = anthropic_post(
        fake_anthropic, {"model": "claude-opus-4-1-20250805", "max_tokens": 64000, "messages": [USER]}
    )
    assert r.status_code == 400 and "32000" in r.json()["error"]["message"]


def test_anthropic_thinking_signature_is_what_the_fake_sent(fake_anthropic):
    r = anthropic_post(
        fake_anthropic,
        {
            "model": "mock:thinking",
            "max_tokens": 3000,
            "messages": [USER],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        },
    )
    block = r.json()["content"][0]
    assert block["type"] == "thinking" and block["signature"] == sign(block["thinking"])


def test_anthropic_stream_has_ping_and_mid_stream_error(fake_anthropic):
    r = anthropic_post(
        fake_anthropic, {"model": "mock:mid_error", "max_tokens": 100, "stream": True, "messages": [USER]}
    )
    names = [e.split("\n", 1)[0] for e in r.text.split("\n\n") if e]
    assert "event: ping" in names and names[-1] == "event: error"


# ------------------------------------------------------------------ Bedrock


@pytest.mark.parametrize(
    "messages, needle",
    [
        ([{"role": "assistant", "content": [{"text": "x"}]}], "start with a user message"),
        (
            [{"role": "user", "content": [{"text": "a"}]}, {"role": "user", "content": [{"text": "b"}]}],
            "alternate",
        ),
        (
            [
                {"role": "user", "content": [{"text": "a"}]},
                {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}],
                },
                {"role": "user", "content": [{"text": "b"}]},
            ],
            "Expected toolResult",
        ),
        (
            [{"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "x"}]}}]}],
            "exceeds the number of toolUse",
        ),
    ],
)
def test_bedrock_conversation_rules(messages, needle):
    assert needle in (check_conversation({"messages": messages}) or "")


def test_bedrock_accepts_an_alternating_paired_conversation():
    messages = [
        {"role": "user", "content": [{"text": "a"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "x"}]}}]},
    ]
    assert check_conversation({"messages": messages}) is None


# ------------------------------------------------------------------ stream shapes


def test_shapes_reach_the_wire(fake_openai):
    body = {"model": "mock:nospace,keepalive,crlf", "stream": True, "messages": [USER]}
    raw = openai_post(fake_openai, body).content
    assert raw.startswith(b": keep-alive\r\n\r\ndata:{") and b"data: " not in raw


def test_interleaved_fragments_alternate(fake_openai):
    body = {
        "model": "mock:parallel_tools,interleave",
        "stream": True,
        "messages": [USER],
        "tools": [
            {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
            for n in ("a", "b")
        ],
    }
    indexes = []
    for event in openai_post(fake_openai, body).text.split("\n\n"):
        if event.startswith("data: {"):
            for call in json.loads(event[6:])["choices"][0]["delta"].get("tool_calls") or []:
                if not call.get("id"):
                    indexes.append(call["index"])
    assert indexes[:4] == [0, 1, 0, 1]
