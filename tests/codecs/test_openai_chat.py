"""OpenAI Chat Completions codec: pure unit tests (no Django, no network).

Fixtures are the real client captures in tests/fixtures/agents and streams built exactly
the way tests/fakes/openai.py builds them. The official `openai` SDK, driven through
httpx.MockTransport, is the judge of whether what we encode is something an OpenAI client accepts.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from providers.codecs.canonical import (
    BlockDelta,
    BlockStart,
    BlockStop,
    ImageBlock,
    Message,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    Reasoning,
    RedactedThinkingBlock,
    Request,
    Response,
    StreamError,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
    merge_usage,
)
from providers.codecs.errors import GatewayError, InvalidRequest, UnsupportedFeature
from providers.codecs.openai_chat import CODEC, OpenAIChatCodec
from tests.fakes.openai import chunk_bytes, context_length_error, openai_error_body

AGENTS = Path(__file__).resolve().parents[1] / "fixtures" / "agents"  # inside the repo
CAPTURES = [
    "goose/openai-chat.json",
    "opencode/01-openai-compatible-mock/001-v1_chat_completions.json",
    "opencode/01-openai-compatible-mock/002-v1_chat_completions.json",
    "opencode/01-openai-compatible-mock/003-v1_chat_completions.json",
    "aider/01-openai-mock-say-hi/001-v1_chat_completions.json",
    "aider/02-openai-gpt4o-edit-file/001-v1_chat_completions.json",
]


def load(name: str) -> dict:
    path = AGENTS / name
    return json.loads(path.read_text())


def capture_body(name: str) -> dict:
    data = load(name)
    return data["body"] if "body" in data and "messages" not in data else data


def capture_stream(name: str) -> bytes:
    return load(name)["response"]["body_head"].encode()


def collect(decoder, pieces) -> list:
    events = []
    for piece in pieces:
        events += decoder.feed(piece)
    return events + decoder.close()


def decode_stream(data: bytes, step: int | None = None) -> list:
    decoder = CODEC.stream_decoder()
    if step is None:
        return collect(decoder, [data])
    return collect(decoder, [data[i:i + step] for i in range(0, len(data), step)])


def encode_events(events, request: Request) -> bytes:
    encoder = CODEC.stream_encoder(request)
    return b"".join(encoder.encode(e) for e in events) + encoder.close()


def sse_payloads(data: bytes) -> list[bytes]:
    assert data.endswith(b"\n\n")
    frames = data[:-2].split(b"\n\n")
    for frame in frames:
        assert frame.startswith(b"data: "), frame
    return [frame[6:] for frame in frames]


def client_request(**kw) -> Request:
    kw.setdefault("model", "my-alias")
    kw.setdefault("messages", [Message("user", [TextBlock("hi")])])
    kw.setdefault("stream", True)
    kw.setdefault("source_format", "openai_chat")
    return Request(**kw)


def fake_stream(words=(), calls=(), include_usage=True, finish=None, usage=None, model="gpt-4o") -> bytes:
    """A stream laid out byte for byte like tests/fakes/openai.py's FakeOpenAI.chat."""
    base = {"id": "chatcmpl-fake00000001", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model, "service_tier": "default", "system_fingerprint": "fp_fake"}

    def chunk(delta, finish_reason=None):
        obj = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])
        if include_usage:
            obj["usage"] = None
        return chunk_bytes(obj)

    out = [chunk({"role": "assistant", "content": "" if not calls else None, "refusal": None})]
    out += [chunk({"content": w}) for w in words]
    for i, (call_id, name, args) in enumerate(calls):
        out.append(chunk({"tool_calls": [{"index": i, "id": call_id, "type": "function",
                                          "function": {"name": name, "arguments": ""}}]}))
        for j in range(0, len(args), 7):
            out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args[j:j + 7]}}]}))
    out.append(chunk({}, finish or ("tool_calls" if calls else "stop")))
    if include_usage:
        out.append(chunk_bytes(dict(base, choices=[], usage=usage or {
            "prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129,
            "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}})))
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def data_line(obj) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def mock_client(status: int, content: bytes, content_type: str) -> openai.OpenAI:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers={"content-type": content_type})

    return openai.OpenAI(api_key="jk-test", base_url="http://gateway.test/v1", max_retries=0,
                         http_client=httpx.Client(transport=httpx.MockTransport(handler)))


# =========================================================================== captures


class TestCaptures:
    @pytest.mark.parametrize("name", CAPTURES)
    def test_every_openai_capture_survives_decode_and_reencode(self, name):
        body = capture_body(name)
        request = CODEC.decode_request(body)
        assert request.source_format == "openai_chat"
        assert request.model == body["model"]
        out = CODEC.encode_request(request)

        original_system = [m["content"] for m in body["messages"] if m["role"] == "system"]
        assert [b.text for b in request.system] == original_system
        assert out["messages"][0] == {"role": "system", "content": "\n\n".join(original_system)}
        assert all(m["role"] != "system" for m in out["messages"][1:])

        # every other message keeps its place, role, tool call ids and content
        rest = [m for m in body["messages"] if m["role"] != "system"]
        sent = out["messages"][1:]
        assert [m["role"] for m in sent] == [m["role"] for m in rest]
        for before, after in zip(rest, sent):
            if before["role"] == "tool":
                assert after["tool_call_id"] == before["tool_call_id"]
            if before.get("tool_calls"):
                assert [c["id"] for c in after["tool_calls"]] == [c["id"] for c in before["tool_calls"]]
                for b, a in zip(before["tool_calls"], after["tool_calls"]):
                    assert a["function"]["name"] == b["function"]["name"]
                    assert json.loads(a["function"]["arguments"]) == json.loads(b["function"]["arguments"])
            elif before["content"]:
                assert after["content"] == before["content"]

        assert [t["function"] for t in out.get("tools", [])] == [t["function"] for t in body.get("tools", [])]
        assert out.get("tool_choice") == body.get("tool_choice")
        assert out.get("max_tokens") == body.get("max_tokens")
        assert out.get("temperature") == body.get("temperature")
        assert out["stream"] is True and out["stream_options"] == {"include_usage": True}

    @pytest.mark.parametrize("name", CAPTURES)
    def test_canonical_form_is_stable_over_a_round_trip(self, name):
        first = CODEC.decode_request(capture_body(name))
        second = CODEC.decode_request(CODEC.encode_request(first))
        assert second.messages == first.messages
        assert second.tools == first.tools
        assert second.tool_choice == first.tool_choice
        assert "\n\n".join(b.text for b in second.system) == "\n\n".join(b.text for b in first.system)
        assert (second.max_tokens, second.temperature, second.stream) == \
               (first.max_tokens, first.temperature, first.stream)
        assert second.stream_include_usage is True  # the gateway always asks upstream for usage

    def test_goose_tool_call_and_result_decode_to_blocks(self):
        request = CODEC.decode_request(capture_body("goose/openai-chat.json"))
        assistant, result = request.messages[1], request.messages[2]
        assert assistant.content == [TextBlock("I'll look at the directory tree first."),
                                     ToolUseBlock("call_Qm3vX8rT2bL9wZ1k", "tree", {"path": "src", "depth": 2})]
        assert result.role == "user"
        assert result.content[0].tool_use_id == "call_Qm3vX8rT2bL9wZ1k"
        assert result.content[0].content[0].text.startswith("src/\n  lib.rs [310]")
        assert [t.name for t in request.tools] == ["shell", "tree"]
        assert request.tools[1].input_schema["required"] == ["path"]
        assert request.max_tokens == 16384 and request.stream_include_usage

    def test_goose_tool_arguments_are_reencoded_byte_for_byte(self):
        out = CODEC.encode_request(CODEC.decode_request(capture_body("goose/openai-chat.json")))
        assert out["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"path":"src","depth":2}'

    def test_opencode_empty_assistant_content_with_tool_calls_is_accepted(self):
        request = CODEC.decode_request(capture_body("opencode/01-openai-compatible-mock/003-v1_chat_completions.json"))
        assistant = request.messages[1]
        assert [b.type for b in assistant.content] == ["tool_use"]
        assert assistant.content[0].input == {"command": "mock", "timeout": 1, "workdir": "mock"}
        out = CODEC.encode_request(request)
        assert out["messages"][2]["content"] is None
        assert out["messages"][3] == {"role": "tool", "tool_call_id": "call_aa8981bf26e743438ab2f1d5",
                                      "content": "NotFound: FileSystem.access (/home/dev/project/mock)"}

    def test_opencode_consecutive_user_messages_stay_separate(self):
        request = CODEC.decode_request(capture_body("opencode/01-openai-compatible-mock/001-v1_chat_completions.json"))
        assert [m.role for m in request.messages] == ["user", "user"]
        assert request.tools is None and request.tool_choice is None

    def test_aider_trailing_system_message_is_kept_in_order(self):
        body = capture_body("aider/02-openai-gpt4o-edit-file/001-v1_chat_completions.json")
        assert body["messages"][-1]["role"] == "system"
        request = CODEC.decode_request(body)
        assert len(request.system) == 2
        assert request.system[0].text.startswith("Act as an expert software developer.")
        assert request.system[1].text.startswith("# *SEARCH/REPLACE block* Rules:")
        assert [m.role for m in request.messages] == ["user", "assistant", "user"]

    def test_aider_minimal_body_adds_nothing_but_usage(self):
        out = CODEC.encode_request(CODEC.decode_request(
            capture_body("aider/01-openai-mock-say-hi/001-v1_chat_completions.json")))
        assert set(out) == {"model", "messages", "temperature", "stream", "stream_options"}
        assert out["temperature"] == 0


# =========================================================================== request decoding


def decode(messages=None, **fields) -> Request:
    body = {"model": "gpt-4o", "messages": messages or [{"role": "user", "content": "hi"}]}
    body.update(fields)
    return CODEC.decode_request(body)


class TestDecodeRequest:
    def test_images_keep_data_url_http_url_detail_and_cache_control(self):
        request = decode([{"role": "user", "content": [
            {"type": "text", "text": "what is this?", "cache_control": {"type": "ephemeral"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        ]}])
        assert request.messages[0].content == [
            TextBlock("what is this?", {"type": "ephemeral"}),
            ImageBlock(media_type="image/png", data="iVBORw0KGgo=", detail="low"),
            ImageBlock(url="https://example.com/cat.jpg"),
        ]
        out = CODEC.encode_request(request)
        assert out["messages"][0]["content"] == [
            {"type": "text", "text": "what is this?", "cache_control": {"type": "ephemeral"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        ]

    def test_consecutive_tool_messages_become_one_user_message(self):
        request = decode([
            {"role": "user", "content": "read both"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "read", "arguments": '{"p":"a"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "read", "arguments": '{"p":"b"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "A"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "B"}]},
            {"role": "user", "content": "thanks"},
        ])
        assert [m.role for m in request.messages] == ["user", "assistant", "user", "user"]
        results = request.messages[2].content
        assert [(r.tool_use_id, r.content) for r in results] == [("call_1", [TextBlock("A")]),
                                                                 ("call_2", [TextBlock("B")])]
        assert request.messages[3].content == [TextBlock("thanks")]
        assert request.messages[1].content[0].input == {"p": "a"}

    def test_a_system_message_between_tool_results_does_not_split_them(self):
        request = decode([
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "x", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "x", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "1"},
            {"role": "system", "content": "be brief"},
            {"role": "tool", "tool_call_id": "c2", "content": "2"},
        ])
        assert len(request.messages) == 2 and len(request.messages[1].content) == 2
        assert request.system == [TextBlock("be brief")]

    def test_system_and_developer_messages_all_go_to_system_in_order(self):
        request = decode([{"role": "developer", "content": "one"}, {"role": "user", "content": "hi"},
                          {"role": "system", "content": [{"type": "text", "text": "two"}]}])
        assert request.system == [TextBlock("one"), TextBlock("two")]
        assert len(request.messages) == 1

    def test_reasoning_content_becomes_a_thinking_block_before_text(self):
        request = decode([{"role": "assistant", "content": "42", "reasoning_content": "let me think"}])
        assert request.messages[0].content == [ThinkingBlock("let me think"), TextBlock("42")]
        out = CODEC.encode_request(request)["messages"][0]
        assert out == {"role": "assistant", "content": "42", "reasoning_content": "let me think"}

    def test_thinking_blocks_keep_signatures_and_redacted_data(self):
        request = decode([{"role": "assistant", "content": "done", "reasoning_content": "ab",
                           "thinking_blocks": [{"type": "thinking", "thinking": "ab", "signature": "sig=="},
                                               {"type": "redacted_thinking", "data": "opaque"}],
                           "tool_calls": [{"id": "t", "type": "function",
                                           "function": {"name": "f", "arguments": "{}"}}]}])
        assert request.messages[0].content == [ThinkingBlock("ab", "sig=="), RedactedThinkingBlock("opaque"),
                                               TextBlock("done"), ToolUseBlock("t", "f", {})]
        out = CODEC.encode_request(request)["messages"][0]
        assert out["reasoning_content"] == "ab"
        assert out["thinking_blocks"] == [{"type": "thinking", "thinking": "ab", "signature": "sig=="},
                                          {"type": "redacted_thinking", "data": "opaque"}]

    def test_invalid_tool_call_arguments_are_a_clear_400(self):
        with pytest.raises(InvalidRequest) as exc:
            decode([{"role": "assistant", "content": None, "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": 1'}}]}])
        assert exc.value.status == 400
        assert "messages[0].tool_calls[0].function.arguments is not valid JSON" in exc.value.message

    def test_tool_call_arguments_must_be_an_object(self):
        with pytest.raises(InvalidRequest, match="must encode a JSON object"):
            decode([{"role": "assistant", "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}]}])

    def test_empty_tool_call_arguments_mean_no_arguments(self):
        request = decode([{"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}]}])
        assert request.messages[0].content == [ToolUseBlock("c", "f", {})]

    @pytest.mark.parametrize("body, field", [
        ([], "request body"),
        ({"messages": [{"role": "user", "content": "x"}]}, "'model'"),
        ({"model": "", "messages": [{"role": "user", "content": "x"}]}, "'model'"),
        ({"model": 7, "messages": [{"role": "user", "content": "x"}]}, "'model'"),
        ({"model": "m"}, "'messages'"),
        ({"model": "m", "messages": []}, "'messages'"),
        ({"model": "m", "messages": {"role": "user"}}, "'messages'"),
        ({"model": "m", "messages": ["hi"]}, "messages[0] must be an object"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
         "messages[0].content[0].text"),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"type": "function", "function": {
            "name": "f", "arguments": "{}"}}]}]}, "messages[0].tool_calls[0].id"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": {}}, "'tools'"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]},
         "tools[0].function.name"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": "100"}, "'max_tokens'"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "'temperature'"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": 3}, "'stop'"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"}, "tool_choice"),
    ])
    def test_malformed_requests_name_the_field(self, body, field):
        with pytest.raises(InvalidRequest) as exc:
            CODEC.decode_request(body)
        assert field in exc.value.message
        assert exc.value.type == "invalid_request" and exc.value.status == 400

    @pytest.mark.parametrize("message", [
        {"role": "function", "name": "f", "content": "x"},
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]},
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "f"}}]},
    ])
    def test_things_canonical_cannot_carry_are_refused_not_dropped(self, message):
        with pytest.raises(UnsupportedFeature) as exc:
            decode([message])
        assert exc.value.type == "unsupported" and exc.value.status == 400

    def test_tools_keep_strict_in_extra_and_empty_tools_stay_empty(self):
        request = decode(tools=[{"type": "function", "function": {
            "name": "f", "description": "does f", "parameters": {"type": "object"}, "strict": True}}])
        assert request.tools == [Tool("f", "does f", {"type": "object"}, extra={"strict": True})]
        assert decode(tools=[]).tools == []
        assert decode().tools is None
        bare = decode(tools=[{"type": "function", "function": {"name": "g"}}]).tools[0]
        assert bare.input_schema == {"type": "object", "properties": {}}

    @pytest.mark.parametrize("wire, canonical", [
        ("auto", ToolChoice("auto")),
        ("none", ToolChoice("none")),
        ("required", ToolChoice("any")),
        ({"type": "function", "function": {"name": "shell"}}, ToolChoice("tool", "shell")),
    ])
    def test_tool_choice_maps_to_canonical(self, wire, canonical):
        assert decode(tool_choice=wire).tool_choice == canonical

    def test_parallel_tool_calls_false_disables_parallel_use(self):
        assert decode(parallel_tool_calls=False).tool_choice == ToolChoice("auto", disable_parallel_tool_use=True)
        assert decode(tool_choice="required", parallel_tool_calls=False).tool_choice == \
            ToolChoice("any", disable_parallel_tool_use=True)
        assert decode(parallel_tool_calls=True).tool_choice is None

    def test_sampling_and_limits_map_to_canonical(self):
        request = decode(max_completion_tokens=900, max_tokens=100, temperature=0.2, top_p=0.9, stop="END",
                         stream=True, stream_options={"include_usage": True}, reasoning_effort="high",
                         response_format={"type": "json_object"}, metadata={"k": "v"})
        assert request.max_tokens == 900
        assert (request.temperature, request.top_p, request.stop) == (0.2, 0.9, ["END"])
        assert request.stream and request.stream_include_usage
        assert request.reasoning == Reasoning(effort="high")
        assert request.response_format == {"type": "json_object"}
        assert request.metadata == {"k": "v"}
        assert request.extra == {}
        assert decode(max_tokens=100).max_tokens == 100
        assert decode(stop=["a", "b"]).stop == ["a", "b"]
        assert decode(stream=True).stream_include_usage is False

    def test_unknown_fields_go_to_extra(self):
        request = decode(n=2, seed=7, logprobs=True, frequency_penalty=0.5, user="dev-1",
                         prediction={"type": "content", "content": "x"}, stream_options={
                             "include_usage": True, "include_obfuscation": False}, stream=True)
        assert request.extra == {"n": 2, "seed": 7, "logprobs": True, "frequency_penalty": 0.5, "user": "dev-1",
                                 "prediction": {"type": "content", "content": "x"},
                                 "stream_options": {"include_obfuscation": False}}

    def test_message_level_cache_control_lands_on_the_last_block(self):
        request = decode([{"role": "system", "content": "sys", "cache_control": {"type": "ephemeral"}},
                          {"role": "user", "content": "hi", "cache_control": {"type": "ephemeral"}}])
        assert request.system[0].cache_control == {"type": "ephemeral"}
        assert request.messages[0].content[0].cache_control == {"type": "ephemeral"}


# =========================================================================== request encoding


def foreign(**kw) -> Request:
    """A request as another front door (Anthropic, Responses ...) would decode it."""
    kw.setdefault("model", "gpt-4o")
    kw.setdefault("messages", [Message("user", [TextBlock("hi")])])
    kw.setdefault("source_format", "anthropic_messages")
    return Request(**kw)


class TestEncodeRequest:
    def test_empty_tools_are_omitted_and_tools_never_added(self):
        assert "tools" not in CODEC.encode_request(foreign(tools=[], tool_choice=ToolChoice("none")))
        out = CODEC.encode_request(foreign(tools=None, tool_choice=ToolChoice("auto", disable_parallel_tool_use=True)))
        assert "tools" not in out and "tool_choice" not in out and "parallel_tool_calls" not in out

    @pytest.mark.parametrize("choice, wire", [
        (ToolChoice("auto"), "auto"), (ToolChoice("none"), "none"), (ToolChoice("any"), "required"),
        (ToolChoice("tool", "shell"), {"type": "function", "function": {"name": "shell"}}),
    ])
    def test_tool_choice_is_encoded(self, choice, wire):
        out = CODEC.encode_request(foreign(tools=[Tool("shell")], tool_choice=choice))
        assert out["tool_choice"] == wire
        assert "parallel_tool_calls" not in out

    def test_disabled_parallel_tool_use_is_sent(self):
        out = CODEC.encode_request(foreign(tools=[Tool("shell")], tool_choice=ToolChoice(
            "auto", disable_parallel_tool_use=True)))
        assert out["parallel_tool_calls"] is False

    @pytest.mark.parametrize("model, key", [
        ("gpt-4o", "max_tokens"), ("qwen2.5-coder:14b", "max_tokens"), ("llama3", "max_tokens"),
        ("o1", "max_completion_tokens"), ("o3-mini", "max_completion_tokens"),
        ("o4-mini", "max_completion_tokens"), ("gpt-5-codex", "max_completion_tokens"),
        ("openai/o4-mini", "max_completion_tokens"), ("GPT-5", "max_completion_tokens"),
    ])
    def test_max_tokens_field_depends_on_the_model(self, model, key):
        out = CODEC.encode_request(foreign(model=model, max_tokens=1000))
        assert out[key] == 1000
        assert {"max_tokens", "max_completion_tokens"} & set(out) == {key}

    def test_streams_always_ask_for_usage_and_none_fields_are_omitted(self):
        out = CODEC.encode_request(foreign(stream=True))
        assert out == {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                       "stream_options": {"include_usage": True}}
        assert "stream_options" not in CODEC.encode_request(foreign(stream=False))

    def test_same_format_extras_are_passed_on(self):
        request = decode(seed=7, n=2, user="dev", metadata={"a": "b"}, stream=True,
                         stream_options={"include_obfuscation": False})
        out = CODEC.encode_request(request)
        assert (out["seed"], out["n"], out["user"], out["metadata"]) == (7, 2, "dev", {"a": "b"})
        assert out["stream_options"] == {"include_obfuscation": False, "include_usage": True}

    def test_foreign_extras_and_metadata_are_dropped(self):
        out = CODEC.encode_request(foreign(extra={"top_k": 5, "context_management": {"edits": []}},
                                           metadata={"user_id": '{"session": "x"}'}))
        assert "top_k" not in out and "context_management" not in out and "metadata" not in out

    @pytest.mark.parametrize("key, value", [
        ("previous_response_id", "resp_123"), ("mcp_servers", [{"type": "url", "url": "https://x"}]),
        ("guardrailConfig", {"guardrailIdentifier": "g"}),
    ])
    def test_foreign_extras_without_an_equivalent_are_refused(self, key, value):
        with pytest.raises(UnsupportedFeature, match=key):
            CODEC.encode_request(foreign(extra={key: value}))

    @pytest.mark.parametrize("budget, effort", [(1024, "low"), (4095, "low"), (4096, "medium"),
                                                (16383, "medium"), (16384, "high"), (64000, "high")])
    def test_thinking_budget_becomes_reasoning_effort(self, budget, effort):
        out = CODEC.encode_request(foreign(model="o3", reasoning=Reasoning(budget_tokens=budget)))
        assert out["reasoning_effort"] == effort

    def test_foreign_reasoning_is_not_sent_to_a_non_reasoning_model(self):
        assert "reasoning_effort" not in CODEC.encode_request(foreign(reasoning=Reasoning(budget_tokens=8000)))
        out = CODEC.encode_request(foreign(model="gpt-oss:20b", reasoning=Reasoning(effort="low")))
        assert out["reasoning_effort"] == "low"

    def test_same_format_reasoning_effort_is_always_sent(self):
        assert CODEC.encode_request(decode(reasoning_effort="minimal"))["reasoning_effort"] == "minimal"
        assert CODEC.encode_request(decode(reasoning_effort="none"))["reasoning_effort"] == "none"
        assert "reasoning_effort" not in CODEC.encode_request(foreign(model="o3", reasoning=Reasoning(enabled=False)))

    def test_anthropic_style_conversation_becomes_openai_messages(self):
        request = foreign(
            system=[TextBlock("You are Claude Code.", {"type": "ephemeral"}), TextBlock("Be terse.")],
            messages=[
                Message("user", [TextBlock("fix the bug")]),
                Message("assistant", [ThinkingBlock("hmm", "sig1"), RedactedThinkingBlock("xx"),
                                      TextBlock("Reading."), ToolUseBlock("toolu_1", "Read", {"path": "a.py"}),
                                      ToolUseBlock("toolu_2", "Bash", {"cmd": "ls"})]),
                Message("user", [
                    TextBlock("also check b.py"),
                    ToolResultBlock("toolu_1", [TextBlock("print(1)")]),
                    ToolResultBlock("toolu_2", [TextBlock("ls: not found")], is_error=True),
                ]),
            ],
            tools=[Tool("Read", "reads", {"type": "object"}, {"type": "ephemeral"}, {"eager_input_streaming": True})],
        )
        out = CODEC.encode_request(request)
        assert out["messages"][0] == {"role": "system", "content": "You are Claude Code.\n\nBe terse."}
        assistant = out["messages"][2]
        assert assistant["content"] == "Reading."
        assert assistant["reasoning_content"] == "hmm"
        assert assistant["thinking_blocks"] == [{"type": "thinking", "thinking": "hmm", "signature": "sig1"},
                                                {"type": "redacted_thinking", "data": "xx"}]
        assert assistant["tool_calls"] == [
            {"id": "toolu_1", "type": "function", "function": {"name": "Read", "arguments": '{"path":"a.py"}'}},
            {"id": "toolu_2", "type": "function", "function": {"name": "Bash", "arguments": '{"cmd":"ls"}'}}]
        # tool results first (right after the tool calls), then the user's text;
        # the error result keeps its text unchanged
        assert out["messages"][3:] == [
            {"role": "tool", "tool_call_id": "toolu_1", "content": "print(1)"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "ls: not found"},
            {"role": "user", "content": "also check b.py"},
        ]
        # foreign cache markers and tool extras are not sent to a plain OpenAI upstream
        assert out["tools"] == [{"type": "function", "function": {
            "name": "Read", "description": "reads", "parameters": {"type": "object"}}}]

    def test_cache_markers_are_sent_when_the_adapter_asks(self):
        codec = OpenAIChatCodec(send_cache_control=True)
        out = codec.encode_request(foreign(
            system=[TextBlock("sys", {"type": "ephemeral"})],
            messages=[Message("user", [TextBlock("hi", {"type": "ephemeral"})])],
            tools=[Tool("Read", cache_control={"type": "ephemeral"})]))
        marker = {"type": "ephemeral"}
        assert out["messages"][0]["content"] == [{"type": "text", "text": "sys", "cache_control": marker}]
        assert out["messages"][1]["content"] == [{"type": "text", "text": "hi", "cache_control": marker}]
        assert out["tools"][0]["cache_control"] == {"type": "ephemeral"}

    def test_thinking_history_can_be_switched_off_for_strict_upstreams(self):
        request = foreign(messages=[Message("assistant", [ThinkingBlock("x", "s"), TextBlock("y")])])
        assert OpenAIChatCodec(send_thinking=False).encode_request(request)["messages"] == [
            {"role": "assistant", "content": "y"}]

    def test_images_returned_by_tools_follow_in_a_user_message(self):
        out = CODEC.encode_request(foreign(messages=[Message("user", [
            ToolResultBlock("toolu_9", [TextBlock("screenshot:"), ImageBlock("image/png", "AAAA")]),
            TextBlock("what do you see?")])]))
        assert out["messages"] == [
            {"role": "tool", "tool_call_id": "toolu_9", "content": "screenshot:"},
            {"role": "user", "content": [
                {"type": "text", "text": "Image output of tool call toolu_9:"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "what do you see?"}]},
        ]

    def test_blocks_in_the_wrong_role_are_refused(self):
        with pytest.raises(UnsupportedFeature):
            CODEC.encode_request(foreign(messages=[Message("user", [ToolUseBlock("t", "f", {})])]))
        with pytest.raises(UnsupportedFeature):
            CODEC.encode_request(foreign(messages=[Message("assistant", [ImageBlock(url="https://x/y.png")])]))

    def test_several_assistant_text_blocks_become_text_parts(self):
        out = CODEC.encode_request(foreign(messages=[Message("assistant", [TextBlock("a"), TextBlock("b")])]))
        assert out["messages"][0]["content"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]

    def test_raw_arguments_kept_from_a_broken_upstream_call_go_back_verbatim(self):
        out = CODEC.encode_request(foreign(messages=[Message("assistant", [
            ToolUseBlock("c", "f", {"_raw_arguments": '{"a": 1'})])]))
        assert out["messages"][0]["tool_calls"][0]["function"]["arguments"] == '{"a": 1'


# =========================================================================== responses


def fake_response(message: dict, finish="stop", usage=None) -> dict:
    """Shaped like FakeOpenAI's non-streaming answer."""
    body = {"id": "chatcmpl-fake00000001", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "refusal": None, "annotations": [], **message},
                         "logprobs": None, "finish_reason": finish}],
            "service_tier": "default", "system_fingerprint": "fp_fake"}
    if usage is not False:
        body["usage"] = usage or {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129,
                                  "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 0},
                                  "completion_tokens_details": {"reasoning_tokens": 3, "audio_tokens": 0}}
    return body


class TestResponses:
    def test_text_answer_decodes_with_usage(self):
        response = CODEC.decode_response(fake_response({"content": "Hello world"}))
        assert response.id == "chatcmpl-fake00000001" and response.model == "gpt-4o"
        assert response.content == [TextBlock("Hello world")]
        assert response.stop_reason == "end_turn"
        assert response.usage == Usage(input_tokens=120, output_tokens=9, cache_read_tokens=100, reasoning_tokens=3)

    def test_tool_calls_decode_in_order_after_thinking_and_text(self):
        response = CODEC.decode_response(fake_response({
            "content": "Looking.", "reasoning_content": "plan",
            "tool_calls": [{"id": "call_fake0001", "type": "function",
                            "function": {"name": "tree", "arguments": '{"path": "src", "depth": 2}'}},
                           {"id": "call_fake0002", "type": "function",
                            "function": {"name": "read", "arguments": '{"path": "README.md"}'}}]}, "tool_calls"))
        assert response.content == [ThinkingBlock("plan"), TextBlock("Looking."),
                                    ToolUseBlock("call_fake0001", "tree", {"path": "src", "depth": 2}),
                                    ToolUseBlock("call_fake0002", "read", {"path": "README.md"})]
        assert response.stop_reason == "tool_use"

    def test_malformed_upstream_arguments_are_kept_raw_and_never_crash(self):
        response = CODEC.decode_response(fake_response({"content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"path": "src'}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "42"}},
            {"id": "c3", "type": "function", "function": {"name": "h"}}]}, "tool_calls"))
        assert [b.input for b in response.content] == [{"_raw_arguments": '{"path": "src'},
                                                       {"_raw_arguments": "42"}, {}]
        out = CODEC.encode_response(response, client_request())
        assert [c["function"]["arguments"] for c in out["choices"][0]["message"]["tool_calls"]] == \
            ['{"path": "src', "42", "{}"]

    @pytest.mark.parametrize("finish, stop", [("stop", "end_turn"), ("length", "max_tokens"),
                                              ("tool_calls", "tool_use"), ("function_call", "tool_use"),
                                              ("content_filter", "refusal"), (None, "end_turn"),
                                              ("something_new", "end_turn")])
    def test_finish_reasons_map_to_stop_reasons(self, finish, stop):
        assert CODEC.decode_response(fake_response({"content": "x"}, finish)).stop_reason == stop

    def test_stop_next_to_tool_calls_means_tool_use(self):
        response = CODEC.decode_response(fake_response({"content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, "stop"))
        assert response.stop_reason == "tool_use"

    def test_openrouter_usage_extras_and_null_details(self):
        usage = CODEC.decode_response(fake_response({"content": "x"}, usage={
            "prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050, "cost": 0.0123,
            "prompt_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 300},
            "completion_tokens_details": None})).usage
        assert usage == Usage(1000, 50, 600, 300, 0, 0.0123)
        assert CODEC.decode_response(fake_response({"content": "x"}, usage=False)).usage == Usage()
        assert CODEC.usage_from_response(fake_response({"content": "x"})).cache_read_tokens == 100

    def test_refusal_becomes_text_with_refusal_stop(self):
        response = CODEC.decode_response(fake_response({"content": None, "refusal": "I can't help with that."}))
        assert response.content == [TextBlock("I can't help with that.")]
        assert response.stop_reason == "refusal"

    def test_an_error_body_or_missing_choices_is_a_gateway_error(self):
        with pytest.raises(GatewayError) as exc:
            CODEC.decode_response({"error": {"message": "Provider returned error", "code": 429}})
        assert exc.value.type == "rate_limit" and exc.value.status == 429 and exc.value.retryable
        with pytest.raises(GatewayError) as exc:
            CODEC.decode_response({"id": "x", "choices": []})
        assert exc.value.type == "bad_gateway" and exc.value.retryable

    def test_encoded_response_uses_the_client_alias_and_is_a_valid_chat_completion(self):
        response = Response(id="msg_01", model="claude-sonnet-4", content=[
            ThinkingBlock("plan", "sig"), TextBlock("On it."), ToolUseBlock("toolu_1", "tree", {"path": "src"})],
            stop_reason="tool_use", usage=Usage(1200, 80, 1000, 150, 20))
        out = CODEC.encode_response(response, client_request(model="team-default"))
        assert out["id"] == "chatcmpl-msg_01" and out["object"] == "chat.completion"
        assert out["model"] == "team-default" and isinstance(out["created"], int)
        choice = out["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["content"] == "On it."
        assert choice["message"]["reasoning_content"] == "plan"
        assert choice["message"]["thinking_blocks"] == [{"type": "thinking", "thinking": "plan", "signature": "sig"}]
        assert choice["message"]["tool_calls"] == [{"id": "toolu_1", "type": "function",
                                                    "function": {"name": "tree", "arguments": '{"path":"src"}'}}]
        assert out["usage"] == {"prompt_tokens": 1200, "completion_tokens": 80, "total_tokens": 1280,
                                "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 150},
                                "completion_tokens_details": {"reasoning_tokens": 20}}
        parsed = ChatCompletion.model_validate(out)
        assert parsed.choices[0].message.tool_calls[0].function.name == "tree"

    def test_content_is_null_when_only_tool_calls(self):
        out = CODEC.encode_response(Response("x", "m", [ToolUseBlock("c", "f", {})], "tool_use"), client_request())
        assert out["choices"][0]["message"]["content"] is None
        assert "reasoning_content" not in out["choices"][0]["message"]

    @pytest.mark.parametrize("stop, finish", [("end_turn", "stop"), ("max_tokens", "length"),
                                              ("tool_use", "tool_calls"), ("stop_sequence", "stop"),
                                              ("refusal", "content_filter"), (None, "stop")])
    def test_stop_reasons_map_to_finish_reasons(self, stop, finish):
        out = CODEC.encode_response(Response("x", "m", [TextBlock("t")], stop), client_request())
        assert out["choices"][0]["finish_reason"] == finish

    def test_response_round_trips(self):
        body = fake_response({"content": "Hi", "reasoning_content": "r", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":[1,2]}'}}]},
            "tool_calls")
        first = CODEC.decode_response(body)
        again = CODEC.decode_response(CODEC.encode_response(first, client_request()))
        assert again.content == first.content
        assert again.stop_reason == first.stop_reason and again.usage == first.usage

    def test_the_openai_sdk_reads_an_encoded_response(self):
        out = CODEC.encode_response(Response("r1", "m", [TextBlock("Hello")], usage=Usage(10, 2)),
                                    client_request(stream=False))
        client = mock_client(200, orjson.dumps(out), "application/json")
        completion = client.chat.completions.create(model="my-alias", messages=[{"role": "user", "content": "hi"}])
        assert completion.choices[0].message.content == "Hello"
        assert completion.usage.total_tokens == 12


# =========================================================================== stream decoding


def kinds(events) -> list[str]:
    return [type(e).__name__ for e in events]


def text_of(events, kind="text") -> str:
    return "".join(e.value for e in events if isinstance(e, BlockDelta) and e.kind == kind)


class TestStreamDecoder:
    def test_real_opencode_tool_stream_decodes(self):
        events = decode_stream(capture_stream("opencode/01-openai-compatible-mock/002-v1_chat_completions.json"))
        assert kinds(events) == ["MessageStart", "BlockStart"] + ["BlockDelta"] * 6 + \
            ["BlockStop", "MessageDelta", "MessageStop"]
        assert events[0] == MessageStart("chatcmpl-mock000000649b1b0ec3c95e6", "mock-n20")
        assert events[1] == BlockStart(0, ToolUseBlock("call_aa8981bf26e743438ab2f1d5", "bash", {}))
        assert json.loads(text_of(events, "json")) == {"command": "mock", "timeout": 1, "workdir": "mock"}
        assert events[-2] == MessageDelta("tool_use", usage=Usage(input_tokens=6776, output_tokens=13))

    @pytest.mark.parametrize("source", ["capture", "fake-utf8"])
    def test_any_split_point_gives_identical_events(self, source):
        if source == "capture":
            data = capture_stream("opencode/01-openai-compatible-mock/002-v1_chat_completions.json")
        else:
            data = fake_stream(words=["Grüße", " 🙂", " naïve", " 日本語"],
                               calls=[("call_1", "write", '{"text": "héllo wörld 🙂"}')])
        whole = decode_stream(data)
        assert kinds(whole)[-1] == "MessageStop"
        for i in range(1, len(data)):
            assert collect(CODEC.stream_decoder(), [data[:i], data[i:]]) == whole, i
        assert decode_stream(data, step=1) == whole
        assert decode_stream(data, step=13) == whole

    def test_fake_text_stream_with_usage(self):
        events = decode_stream(fake_stream(words=["Hello", " world", " ünïcode"]))
        assert events[0] == MessageStart("chatcmpl-fake00000001", "gpt-4o")
        assert events[1] == BlockStart(0, TextBlock(""))
        assert text_of(events) == "Hello world ünïcode"
        assert events[-3] == BlockStop(0)
        assert events[-2] == MessageDelta("end_turn", usage=Usage(120, 9, 100))
        assert events[-1] == MessageStop()

    def test_parallel_tool_calls_are_sequential_blocks(self):
        events = decode_stream(fake_stream(calls=[("call_fake0001", "tree", '{"path": "src", "depth": 2}'),
                                                  ("call_fake0002", "read", '{"path": "README.md"}')]))
        starts = [e for e in events if isinstance(e, BlockStart)]
        assert [(s.index, s.block.id, s.block.name) for s in starts] == [(0, "call_fake0001", "tree"),
                                                                         (1, "call_fake0002", "read")]
        stop0 = events.index(BlockStop(0))
        assert stop0 < events.index(starts[1])
        args = {i: "".join(e.value for e in events if isinstance(e, BlockDelta) and e.index == i) for i in (0, 1)}
        assert json.loads(args[0]) == {"path": "src", "depth": 2} and json.loads(args[1]) == {"path": "README.md"}
        assert events[-2].stop_reason == "tool_use"

    def test_without_a_usage_chunk_usage_is_none(self):
        events = decode_stream(fake_stream(words=["a"], include_usage=False))
        assert events[-2] == MessageDelta("end_turn", usage=None)

    def test_length_finish_maps_to_max_tokens(self):
        assert decode_stream(fake_stream(words=["a"], finish="length"))[-2].stop_reason == "max_tokens"

    def test_reasoning_then_content_opens_a_thinking_then_a_text_block(self):
        data = b"".join(data_line({"id": "c", "model": "deepseek", "choices": [{"index": 0, "delta": d}]}) for d in [
            {"role": "assistant", "content": ""}, {"reasoning_content": "Let me"}, {"reasoning": " think"},
            {"content": "Answer"}])
        data += data_line({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        data += b"data: [DONE]\n\n"
        events = decode_stream(data)
        assert events[1:7] == [BlockStart(0, ThinkingBlock("")), BlockDelta(0, "thinking", "Let me"),
                               BlockDelta(0, "thinking", " think"), BlockStop(0), BlockStart(1, TextBlock("")),
                               BlockDelta(1, "text", "Answer")]

    def test_litellm_thinking_blocks_carry_the_signature_without_doubling_text(self):
        data = b"".join(data_line({"id": "c", "model": "claude", "choices": [{"index": 0, "delta": d}]}) for d in [
            {"reasoning_content": "abc", "thinking_blocks": [{"type": "thinking", "thinking": "abc"}]},
            {"reasoning_content": "", "thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "S1"}]},
            {"thinking_blocks": [{"type": "redacted_thinking", "data": "R"}]},
            {"content": "ok"}]) + b"data: [DONE]\n\n"
        events = decode_stream(data)
        assert events[1:10] == [BlockStart(0, ThinkingBlock("")), BlockDelta(0, "thinking", "abc"),
                                BlockDelta(0, "signature", "S1"), BlockStop(0),
                                BlockStart(1, RedactedThinkingBlock("R")), BlockStop(1),
                                BlockStart(2, TextBlock("")), BlockDelta(2, "text", "ok"), BlockStop(2)]

    def test_error_mid_stream_becomes_a_stream_error_and_ends_the_stream(self):
        decoder = CODEC.stream_decoder()
        events = decoder.feed(fake_stream(words=["a"]).split(b"\n\n")[0] + b"\n\n" + data_line(
            {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}))
        assert kinds(events) == ["MessageStart", "StreamError"]
        assert events[-1].type == "rate_limit" and "Rate limit reached" in events[-1].message
        assert decoder.feed(b"data: [DONE]\n\n") == [] and decoder.close() == []

    def test_openrouter_style_error_code_gives_the_status(self):
        events = decode_stream(data_line({"error": {"message": "Provider disconnected", "code": 502}}))
        assert events == [StreamError("api_error", "upstream error: Provider disconnected", 502)]

    def test_invalid_json_is_a_stream_error(self):
        events = decode_stream(b'data: {"id": "x", "choices": [\n\n')
        assert len(events) == 1 and isinstance(events[0], StreamError) and events[0].status == 502

    def test_unknown_shapes_and_comments_are_ignored(self):
        data = (b": keep-alive\n\n" + data_line({"id": "c", "model": "m", "choices": [
            {"index": 0, "delta": {"role": "assistant", "audio": {"x": 1}}, "weird": True}]}) +
            data_line(["not", "an", "object"]) + data_line({"something": "else"}) +
            data_line({"id": "c", "choices": [{"index": 1, "delta": {"content": "other choice"}}]}) +
            data_line({"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}) +
            b"event: ping\ndata: {}\n\n" + b"data: [DONE]\n\n")
        events = decode_stream(data)
        assert kinds(events) == ["MessageStart", "BlockStart", "BlockDelta", "BlockStop", "MessageDelta",
                                 "MessageStop"]
        assert text_of(events) == "hi"

    def test_missing_done_after_a_finish_reason_ends_normally(self):
        data = fake_stream(words=["a"]).replace(b"data: [DONE]\n\n", b"")
        events = decode_stream(data)
        assert kinds(events)[-2:] == ["MessageDelta", "MessageStop"]
        assert events[-2].usage.input_tokens == 120

    def test_a_last_event_without_its_blank_line_still_counts(self):
        data = fake_stream(words=["a"]).replace(b"data: [DONE]\n\n", b"")[:-2]
        events = decode_stream(data)
        assert events[-2].usage == Usage(120, 9, 100)

    def test_a_stream_cut_before_the_finish_is_an_error(self):
        # The capture's body_head is the first 4096 bytes: cut mid-event.
        events = decode_stream(capture_stream("aider/01-openai-mock-say-hi/001-v1_chat_completions.json"))
        assert kinds(events)[:3] == ["MessageStart", "BlockStart", "BlockDelta"]
        assert isinstance(events[-1], StreamError)
        assert (events[-1].type, events[-1].status) == ("bad_gateway", 502)
        assert "ended early" in events[-1].message

    def test_a_stream_cut_between_events_is_an_error(self):
        data = fake_stream(words=["a", "b"])
        events = decode_stream(data[:data.index(b'"finish_reason":"stop"')].rsplit(b"\n\n", 1)[0] + b"\n\n")
        assert events[-1] == StreamError("bad_gateway", "upstream stream ended early", 502)

    def test_crlf_line_endings_work(self):
        assert decode_stream(fake_stream(words=["x", "y"]).replace(b"\n", b"\r\n")) == \
            decode_stream(fake_stream(words=["x", "y"]))

    def test_tool_calls_with_stop_finish_still_mean_tool_use(self):
        assert decode_stream(fake_stream(calls=[("c", "f", "{}")], finish="stop"))[-2].stop_reason == "tool_use"

    def test_a_call_whose_name_comes_late_is_started_with_its_early_arguments(self):
        data = b"".join(data_line({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [tc]}}]}) for tc in [
            {"index": 0, "id": "call_9", "function": {"arguments": '{"a"'}},
            {"index": 0, "function": {"name": "f", "arguments": ":1}"}}]) + b"data: [DONE]\n\n"
        events = decode_stream(data)
        assert events[1:4] == [BlockStart(0, ToolUseBlock("call_9", "f", {})), BlockDelta(0, "json", '{"a":1}'),
                               BlockStop(0)]

    def test_calls_without_index_are_told_apart_by_id(self):
        data = b"".join(data_line({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [tc]}}]}) for tc in [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{"}},
            {"function": {"arguments": "}"}}]) + b"data: [DONE]\n\n"
        events = decode_stream(data)
        assert [(e.index, e.block.name) for e in events if isinstance(e, BlockStart)] == [(0, "f"), (1, "g")]
        assert [e for e in events if isinstance(e, BlockDelta)] == [
            BlockDelta(0, "json", "{}"), BlockDelta(1, "json", "{"), BlockDelta(1, "json", "}")]

    def test_done_before_any_chunk_is_an_error(self):
        assert isinstance(decode_stream(b"data: [DONE]\n\n")[0], StreamError)
        assert isinstance(decode_stream(b"")[0], StreamError)


# =========================================================================== stream encoding


TEXT_EVENTS = [
    MessageStart("abc123", "upstream-model", Usage(input_tokens=50)),
    BlockStart(0, TextBlock("")),
    BlockDelta(0, "text", "Hello"),
    Ping(),
    BlockDelta(0, "text", " wörld"),
    BlockStop(0),
    MessageDelta("end_turn", usage=Usage(output_tokens=7)),
    MessageStop(),
]

TOOL_EVENTS = [
    MessageStart("chatcmpl-xyz", "upstream-model"),
    BlockStart(0, ThinkingBlock("")),
    BlockDelta(0, "thinking", "plan"),
    BlockDelta(0, "signature", "SIG"),
    BlockStop(0),
    BlockStart(1, TextBlock("")),
    BlockDelta(1, "text", "Let me look."),
    BlockStop(1),
    BlockStart(2, ToolUseBlock("toolu_1", "tree", {})),
    BlockDelta(2, "json", '{"path":'),
    BlockDelta(2, "json", '"src"}'),
    BlockStop(2),
    BlockStart(3, ToolUseBlock("toolu_2", "read", {})),
    BlockDelta(3, "json", '{"path":"README.md"}'),
    BlockStop(3),
    MessageDelta("tool_use", usage=Usage(input_tokens=900, output_tokens=40, cache_read_tokens=800)),
    MessageStop(),
]


def check_agent_rules(data: bytes, include_usage: bool) -> list[dict]:
    """The rules from shared/agents.md (tests/fixtures/agents/README.md) that break Goose's and
    opencode's parsers."""
    payloads = sse_payloads(data)
    assert payloads[-1] == b"[DONE]"
    assert payloads.count(b"[DONE]") == 1
    chunks = [orjson.loads(p) for p in payloads[:-1]]
    finish_at = [i for i, c in enumerate(chunks) if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish_at) == 1, "exactly one finish_reason, before [DONE]"
    seen_calls = set()
    for c in chunks:
        assert c["object"] == "chat.completion.chunk"
        assert isinstance(c["choices"], list), "every chunk carries a choices array"
        assert isinstance(c["model"], str) and c["model"]
        for choice in c["choices"]:
            for call in choice["delta"].get("tool_calls", []):
                if call["index"] not in seen_calls:
                    seen_calls.add(call["index"])
                    assert call["id"] and call["function"]["name"] and isinstance(call["function"]["arguments"], str)
                assert call["function"].get("arguments", "") is not None
        if include_usage:
            assert "usage" in c
        else:
            assert "usage" not in c
    if include_usage:
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] is not None
        assert all(c["usage"] is None for c in chunks[:-1])
        assert finish_at[0] == len(chunks) - 2
    else:
        assert finish_at[0] == len(chunks) - 1
    for c in chunks:
        ChatCompletionChunk.model_validate(c)
    return chunks


class TestStreamEncoder:
    def test_text_stream_matches_openai_layout(self):
        data = encode_events(TEXT_EVENTS, client_request(model="team-fast", stream_include_usage=True))
        chunks = check_agent_rules(data, include_usage=True)
        assert all(c["id"] == "chatcmpl-abc123" and c["model"] == "team-fast" for c in chunks)
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert [c["choices"][0]["delta"].get("content") for c in chunks[1:3]] == ["Hello", " wörld"]
        assert chunks[3]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
        assert chunks[4]["usage"] == {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57,
                                      "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                                      "completion_tokens_details": {"reasoning_tokens": 0}}

    def test_chunks_have_the_same_keys_as_the_fake_upstream(self):
        ours = sse_payloads(encode_events(TEXT_EVENTS, client_request(stream_include_usage=True)))
        theirs = sse_payloads(fake_stream(words=["Hello", " wörld"]))
        assert len(ours) == len(theirs)
        for a, b in zip(ours[:-1], theirs[:-1]):
            a, b = orjson.loads(a), orjson.loads(b)
            assert list(a) == [k for k in b if k not in ("service_tier", "system_fingerprint")]
            if b["choices"]:
                assert list(a["choices"][0]) == list(b["choices"][0])
                assert a["choices"][0]["delta"] == {k: v for k, v in b["choices"][0]["delta"].items()
                                                    if k != "refusal"}
        assert ours[-1] == theirs[-1] == b"[DONE]"

    def test_without_include_usage_there_is_no_usage_anywhere(self):
        data = encode_events(TEXT_EVENTS, client_request(stream_include_usage=False))
        chunks = check_agent_rules(data, include_usage=False)
        assert len(chunks) == 4

    def test_tool_stream_follows_the_agent_rules(self):
        data = encode_events(TOOL_EVENTS, client_request(stream_include_usage=True))
        chunks = check_agent_rules(data, include_usage=True)
        deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
        assert deltas[1] == {"reasoning_content": "plan"}
        assert deltas[2] == {"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "SIG"}]}
        assert deltas[3] == {"content": "Let me look."}
        assert deltas[4] == {"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function",
                                             "function": {"name": "tree", "arguments": ""}}]}
        assert deltas[5] == {"tool_calls": [{"index": 0, "function": {"arguments": '{"path":'}}]}
        assert deltas[7]["tool_calls"][0]["index"] == 1 and deltas[7]["tool_calls"][0]["id"] == "toolu_2"
        assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
        assert chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 800

    def test_tool_calls_finish_as_tool_calls_even_after_end_turn(self):
        events = [e if not isinstance(e, MessageDelta) else MessageDelta("end_turn") for e in TOOL_EVENTS]
        chunks = check_agent_rules(encode_events(events, client_request()), include_usage=False)
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    def test_a_missing_message_delta_gets_a_synthetic_finish_before_done(self):
        events = [e for e in TEXT_EVENTS if not isinstance(e, MessageDelta)]
        chunks = check_agent_rules(encode_events(events, client_request(stream_include_usage=True)), True)
        assert chunks[-2]["choices"][0]["finish_reason"] == "stop"

    @pytest.mark.parametrize("stop, finish", [("max_tokens", "length"), ("stop_sequence", "stop"),
                                              ("refusal", "content_filter"), ("end_turn", "stop")])
    def test_finish_reason_mapping(self, stop, finish):
        events = TEXT_EVENTS[:6] + [MessageDelta(stop), MessageStop()]
        chunks = check_agent_rules(encode_events(events, client_request()), False)
        assert chunks[-1]["choices"][0]["finish_reason"] == finish

    def test_stream_error_is_an_error_event_without_done(self):
        encoder = CODEC.stream_encoder(client_request(stream_include_usage=True))
        head = b"".join(encoder.encode(e) for e in TEXT_EVENTS[:3])
        err = encoder.encode(StreamError("overloaded", "upstream error: Overloaded", 529))
        assert err == b'data: {"error":{"message":"upstream error: Overloaded","type":"server_error",' \
                      b'"code":"overloaded"}}\n\n'
        assert encoder.encode(MessageStop()) == b"" and encoder.close() == b""
        assert b"[DONE]" not in head + err

    def test_the_openai_sdk_raises_on_an_error_event(self):
        encoder = CODEC.stream_encoder(client_request())
        data = encoder.encode(TEXT_EVENTS[0]) + encoder.encode(StreamError("rate_limit", "slow down", 429))
        client = mock_client(200, data, "text/event-stream")
        with pytest.raises(openai.APIError, match="slow down"):
            for _ in client.chat.completions.create(model="a", messages=[], stream=True):
                pass

    def test_close_without_a_finished_message_writes_an_error(self):
        encoder = CODEC.stream_encoder(client_request())
        encoder.encode(TEXT_EVENTS[0])
        tail = encoder.close()
        assert orjson.loads(sse_payloads(tail)[0])["error"]["type"] == "server_error"
        assert encoder.close() == b""

    def test_done_is_written_at_message_stop_and_close_adds_nothing(self):
        encoder = CODEC.stream_encoder(client_request())
        out = b"".join(encoder.encode(e) for e in TEXT_EVENTS)
        assert out.endswith(b"data: [DONE]\n\n")
        assert encoder.close() == b""
        assert encoder.encode(Ping()) == b""

    def test_ping_and_block_stop_write_nothing(self):
        encoder = CODEC.stream_encoder(client_request())
        encoder.encode(TEXT_EVENTS[0])
        assert encoder.encode(Ping()) == b"" and encoder.encode(BlockStop(0)) == b""

    def test_the_openai_sdk_accumulates_our_stream(self):
        data = encode_events(TOOL_EVENTS, client_request(model="alias", stream_include_usage=True))
        client = mock_client(200, data, "text/event-stream")
        state = ChatCompletionStreamState()
        for chunk in client.chat.completions.create(model="alias", messages=[], stream=True,
                                                    stream_options={"include_usage": True}):
            state.handle_chunk(chunk)
        final = state.get_final_completion()
        message = final.choices[0].message
        assert final.model == "alias" and final.choices[0].finish_reason == "tool_calls"
        assert message.content == "Let me look."
        assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls] == [
            ("toolu_1", "tree", {"path": "src"}), ("toolu_2", "read", {"path": "README.md"})]
        assert final.usage.prompt_tokens == 900

    @pytest.mark.parametrize("events", [TEXT_EVENTS, TOOL_EVENTS], ids=["text", "tools"])
    def test_encoder_output_decodes_back_to_the_same_events(self, events):
        back = decode_stream(encode_events(events, client_request(model="alias", stream_include_usage=True)))
        expected = [e for e in events if not isinstance(e, Ping)]
        start, delta = expected[0], expected[-2]
        assert back[0] == MessageStart(start.id if start.id.startswith("chatcmpl-") else "chatcmpl-" + start.id,
                                       "alias")
        assert back[1:-2] == expected[1:-2]
        usage = merge_usage(merge_usage(Usage(), start.usage), delta.usage)
        assert back[-2] == MessageDelta(delta.stop_reason, usage=usage)
        assert back[-1] == MessageStop()

    def test_upstream_fake_stream_reencodes_for_a_client(self):
        upstream = fake_stream(words=["Hel", "lo"], calls=[("call_1", "f", '{"x": 1}')], finish="tool_calls")
        events = decode_stream(upstream)
        chunks = check_agent_rules(encode_events(events, client_request(model="alias", stream_include_usage=True)),
                                   include_usage=True)
        assert chunks[-1]["usage"]["prompt_tokens"] == 120
        assert chunks[-1]["model"] == "alias"


# =========================================================================== errors


class TestErrors:
    @pytest.mark.parametrize("kind, status, wire_type, code", [
        ("invalid_request", 400, "invalid_request_error", None),
        ("unsupported", 400, "invalid_request_error", None),
        ("context_length", 400, "invalid_request_error", "context_length_exceeded"),
        ("authentication", 401, "authentication_error", "invalid_api_key"),
        ("permission", 403, "permission_error", None),
        ("not_found", 404, "not_found_error", "model_not_found"),
        ("request_too_large", 413, "invalid_request_error", "request_too_large"),
        ("rate_limit", 429, "rate_limit_error", "rate_limit_exceeded"),
        ("api_error", 500, "server_error", None),
        ("bad_gateway", 502, "server_error", "bad_gateway"),
        ("overloaded", 503, "server_error", "overloaded"),
        ("timeout", 504, "timeout_error", "timeout"),
    ])
    def test_gateway_errors_encode_with_openai_names(self, kind, status, wire_type, code):
        assert CODEC.encode_error(GatewayError(kind, "boom")) == (
            status, {"error": {"message": "boom", "type": wire_type, "param": None, "code": code}})

    def test_an_explicit_error_code_wins(self):
        status, body = CODEC.encode_error(GatewayError("rate_limit", "budget spent", 429, code="budget_exceeded"))
        assert status == 429 and body["error"]["code"] == "budget_exceeded"

    def test_the_openai_sdk_maps_our_error_bodies(self):
        status, body = CODEC.encode_error(GatewayError("rate_limit", "Rate limit exceeded for key jk-abc"))
        client = mock_client(status, orjson.dumps(body), "application/json")
        with pytest.raises(openai.RateLimitError) as exc:
            client.chat.completions.create(model="a", messages=[])
        assert exc.value.code == "rate_limit_exceeded" and "jk-abc" in exc.value.message

    @pytest.mark.parametrize("status, kind, retryable, code", [
        (400, "invalid_request", False, None), (401, "authentication", False, "invalid_api_key"),
        (404, "not_found", False, "model_not_found"), (429, "rate_limit", True, "rate_limit_exceeded"),
        (500, "api_error", True, None), (503, "overloaded", True, None),
    ])
    def test_fake_upstream_error_bodies_decode(self, status, kind, retryable, code):
        body = openai_error_body(status)
        error = CODEC.decode_error(status, orjson.dumps(body))
        assert (error.type, error.status, error.retryable, error.code) == (kind, status, retryable, code)
        assert error.message == f"upstream error (HTTP {status}): {body['error']['message']}"

    def test_context_length_errors_are_recognised(self):
        error = CODEC.decode_error(400, orjson.dumps(context_length_error()))
        assert (error.type, error.code, error.status, error.retryable) == \
            ("context_length", "context_length_exceeded", 400, False)
        assert "maximum context length is 8192 tokens" in error.message
        status, body = CODEC.encode_error(error)
        assert status == 400 and body["error"]["code"] == "context_length_exceeded"

    @pytest.mark.parametrize("body", [
        {"object": "error", "message": "This model's maximum context length is 4096 tokens.", "type":
            "BadRequestError", "code": 400},
        {"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it",
                   "type": "exceed_context_size_error"}},
        {"error": "Too many tokens in the prompt"},
    ])
    def test_context_length_phrases_from_other_servers(self, body):
        error = CODEC.decode_error(400, orjson.dumps(body))
        assert error.type == "context_length" and error.code == "context_length_exceeded"

    def test_html_502_keeps_a_short_readable_excerpt(self):
        error = CODEC.decode_error(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>")
        assert error.message == "upstream error (HTTP 502): 502 Bad Gateway"
        assert (error.type, error.status, error.retryable) == ("api_error", 502, True)

    def test_long_and_garbage_bodies_never_raise(self):
        long = CODEC.decode_error(500, b"x" * 10000)
        assert len(long.message) < 300 and long.message.endswith("...")
        assert "(empty body)" in CODEC.decode_error(504, b"").message
        assert CODEC.decode_error(504, b"").type == "timeout"
        assert CODEC.decode_error(500, b"\xff\xfe\x00garbage{").retryable
        assert CODEC.decode_error(400, b"[]").type == "invalid_request"
        assert CODEC.decode_error(400, b'{"error": {"message": {"nested": 1}}}').message.endswith('{"nested":1}')
        assert CODEC.decode_error(408, b"timeout").retryable

    def test_other_servers_error_shapes_keep_their_message(self):
        gemini = CODEC.decode_error(400, orjson.dumps([{"error": {"code": 400, "message": "API key not valid",
                                                                   "status": "INVALID_ARGUMENT"}}]))
        assert gemini.message.endswith("API key not valid")
        fastapi = CODEC.decode_error(422, orjson.dumps({"detail": [{"loc": ["body", "model"], "msg": "required"}]}))
        assert "required" in fastapi.message
        openrouter = CODEC.decode_error(429, orjson.dumps({"error": {
            "message": "Provider returned error", "code": 429,
            "metadata": {"raw": "claude-sonnet-4 is temporarily rate-limited upstream",
                         "provider_name": "Anthropic"}}}))
        assert "Anthropic: claude-sonnet-4 is temporarily rate-limited upstream" in openrouter.message
        assert openrouter.type == "rate_limit" and openrouter.retryable
