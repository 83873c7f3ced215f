"""Bedrock Converse codec, the botocore helpers (signing, credentials, event
stream), and the fake Bedrock over a real loopback socket with SigV4-signed
requests."""

from __future__ import annotations

import json

import httpx
import pytest
from botocore.credentials import ReadOnlyCredentials

from providers.aws import EventStreamDecodeError, EventStreamDecoder, resolve_credentials, sign_request
from providers.codecs import get_codec
from providers.codecs.bedrock_converse import CODEC, converse_path, runtime_endpoint, usage_from_bedrock
from providers.codecs.canonical import (
    BlockDelta,
    BlockStart,
    BlockStop,
    ImageBlock,
    Message,
    MessageDelta,
    MessageStart,
    MessageStop,
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
)
from providers.codecs.errors import GatewayError, UnsupportedFeature
from tests.fakes.bedrock import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    FakeBedrock,
    event_frame,
    exception_frame,
    frame,
)

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
JPEG = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsL"
CLAUDE = "anthropic.claude-sonnet-4-20250514-v1:0"
EPHEMERAL = {"type": "ephemeral"}
SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}


def rich_request(**overrides) -> Request:
    req = Request(
        model=CLAUDE,
        system=[TextBlock("You are a coding agent."), TextBlock("Project rules.", cache_control=EPHEMERAL)],
        messages=[
            Message("user", [ImageBlock(media_type="image/png", data=PNG), TextBlock("What is in src?")]),
            Message("assistant", [
                ThinkingBlock("The user wants a listing.", signature="sig-1"),
                ThinkingBlock("unsigned, from another provider"),
                RedactedThinkingBlock("cmVkYWN0ZWQ="),
                TextBlock("Let me look."),
                ToolUseBlock(id="toolu_01", name="tree", input={"path": "src"}),
            ]),
            Message("user", [
                ToolResultBlock("toolu_01", [TextBlock("main.rs\nlib.rs"), ImageBlock(media_type="image/jpeg", data=JPEG)]),
                TextBlock("And the README?", cache_control={"type": "ephemeral", "ttl": "1h"}),
            ]),
            Message("assistant", [ToolUseBlock(id="toolu_02", name="read", input={"path": "README.md"})]),
            Message("user", [ToolResultBlock("toolu_02", [], is_error=True)]),
            Message("user", [TextBlock("  "), TextBlock("Go on.")]),
        ],
        tools=[Tool("tree", "List a tree", SCHEMA), Tool("read", None, SCHEMA, cache_control=EPHEMERAL)],
        tool_choice=ToolChoice("auto"),
        max_tokens=8000,
        temperature=0.3,
        top_p=0.9,
        stop=["</done>"],
        stream=True,
        reasoning=Reasoning(enabled=True, budget_tokens=4000),
        source_format="anthropic_messages",
        extra={"context_management": {"edits": []}},
    )
    for key, value in overrides.items():
        setattr(req, key, value)
    return req


# --------------------------------------------------------------------------- encode_request


def test_registry_and_paths():
    assert get_codec("bedrock_converse") is CODEC
    assert CODEC.stream_media_type == "application/vnd.amazon.eventstream"
    assert converse_path(CLAUDE) == "/model/anthropic.claude-sonnet-4-20250514-v1%3A0/converse"
    assert converse_path("arn:aws:bedrock:us-east-1:1:inference-profile/us.x", stream=True) == \
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x/converse-stream"
    assert runtime_endpoint("eu-west-1") == "https://bedrock-runtime.eu-west-1.amazonaws.com"


def test_encode_request_full():
    body = CODEC.encode_request(rich_request())
    assert "modelId" not in body and "model" not in body  # the model id goes in the URL
    assert "context_management" not in body  # extras of another format are not forwarded
    assert body["system"] == [{"text": "You are a coding agent."}, {"text": "Project rules."},
                              {"cachePoint": {"type": "default"}}]
    assert body["messages"] == [
        {"role": "user", "content": [
            {"image": {"format": "png", "source": {"bytes": PNG}}},
            {"text": "What is in src?"}]},
        {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "The user wants a listing.", "signature": "sig-1"}}},
            {"reasoningContent": {"redactedContent": "cmVkYWN0ZWQ="}},
            {"text": "Let me look."},
            {"toolUse": {"toolUseId": "toolu_01", "name": "tree", "input": {"path": "src"}}}]},
        {"role": "user", "content": [
            {"toolResult": {"toolUseId": "toolu_01", "content": [
                {"text": "main.rs\nlib.rs"}, {"image": {"format": "jpeg", "source": {"bytes": JPEG}}}]}},
            {"text": "And the README?"},
            {"cachePoint": {"type": "default", "ttl": "1h"}}]},
        {"role": "assistant", "content": [
            {"toolUse": {"toolUseId": "toolu_02", "name": "read", "input": {"path": "README.md"}}}]},
        # two consecutive user turns merged; blank text dropped; empty error result gets a placeholder
        {"role": "user", "content": [
            {"toolResult": {"toolUseId": "toolu_02", "status": "error", "content": [{"text": "(no output)"}]}},
            {"text": "Go on."}]},
    ]
    # thinking on: temperature/topP are not sent (Anthropic rejects them with extended thinking)
    assert body["inferenceConfig"] == {"maxTokens": 8000, "stopSequences": ["</done>"]}
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 4000}}
    assert body["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "tree", "description": "List a tree", "inputSchema": {"json": SCHEMA}}},
                  {"toolSpec": {"name": "read", "inputSchema": {"json": SCHEMA}}},
                  {"cachePoint": {"type": "default"}}],
        "toolChoice": {"auto": {}}}
    json.dumps(body)  # JSON-serialisable as is


def test_encode_request_reasoning_and_sampling_variants():
    plain = CODEC.encode_request(rich_request(reasoning=None))
    assert plain["inferenceConfig"] == {"maxTokens": 8000, "temperature": 0.3, "topP": 0.9, "stopSequences": ["</done>"]}
    assert "additionalModelRequestFields" not in plain
    effort = CODEC.encode_request(rich_request(reasoning=Reasoning(effort="high"), max_tokens=None))
    assert effort["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 16384
    assert effort["inferenceConfig"]["maxTokens"] > 16384
    clamped = CODEC.encode_request(rich_request(reasoning=Reasoning(budget_tokens=10000), max_tokens=5000))
    assert clamped["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 4999
    tiny = CODEC.encode_request(rich_request(reasoning=Reasoning(budget_tokens=10000), max_tokens=600))
    assert "additionalModelRequestFields" not in tiny and tiny["inferenceConfig"]["temperature"] == 0.3
    off = CODEC.encode_request(rich_request(reasoning=Reasoning(enabled=False)))
    assert "additionalModelRequestFields" not in off
    # Non-Anthropic models get no Anthropic thinking field and no toolResult.status.
    llama = CODEC.encode_request(rich_request(model="meta.llama3-3-70b-instruct-v1:0"))
    assert "additionalModelRequestFields" not in llama
    error_result = llama["messages"][-1]["content"][0]["toolResult"]
    assert "status" not in error_result and error_result["content"][0] == {"text": "Error:"}


def test_encode_request_tool_choice_variants():
    no_history = [Message("user", [TextBlock("hi")])]
    base = dict(messages=no_history, reasoning=None)
    assert CODEC.encode_request(rich_request(tool_choice=ToolChoice("any"), **base))["toolConfig"]["toolChoice"] == {"any": {}}
    forced = CODEC.encode_request(rich_request(tool_choice=ToolChoice("tool", name="read"), **base))
    assert forced["toolConfig"]["toolChoice"] == {"tool": {"name": "read"}}
    assert "toolChoice" not in CODEC.encode_request(rich_request(tool_choice=None, **base))["toolConfig"]
    # none, no tool blocks in history: tools are simply not offered
    assert "toolConfig" not in CODEC.encode_request(rich_request(tool_choice=ToolChoice("none"), **base))
    # none, with tool history: Converse needs toolConfig, has no "none": tools kept, toolChoice omitted
    kept = CODEC.encode_request(rich_request(tool_choice=ToolChoice("none"), reasoning=None))
    assert [t["toolSpec"]["name"] for t in kept["toolConfig"]["tools"] if "toolSpec" in t] == ["tree", "read"]
    assert "toolChoice" not in kept["toolConfig"]
    # tool history but no tools offered (a side call): declare the tools the history uses
    side = CODEC.encode_request(rich_request(tools=[], tool_choice=None, reasoning=None))
    assert [t["toolSpec"]["name"] for t in side["toolConfig"]["tools"]] == ["tree", "read"]
    assert "toolChoice" not in side["toolConfig"]
    assert "toolConfig" not in CODEC.encode_request(rich_request(tools=[], tool_choice=None, **base))


def test_encode_request_images_and_formats():
    url = rich_request(messages=[Message("user", [ImageBlock(url="https://example.com/cat.png")])])
    with pytest.raises(UnsupportedFeature):
        CODEC.encode_request(url)
    bmp = rich_request(messages=[Message("user", [ImageBlock(media_type="image/bmp", data="Qk0=")])])
    with pytest.raises(UnsupportedFeature):
        CODEC.encode_request(bmp)
    data_url = rich_request(messages=[Message("user", [ImageBlock(url="data:image/webp;base64,UklGRg==")])])
    assert CODEC.encode_request(data_url)["messages"][0]["content"] == [
        {"image": {"format": "webp", "source": {"bytes": "UklGRg=="}}}]
    guessed = rich_request(messages=[Message("user", [ImageBlock(data=JPEG)])])
    assert CODEC.encode_request(guessed)["messages"][0]["content"][0]["image"]["format"] == "jpeg"
    schema = rich_request(response_format={"type": "json_schema", "json_schema": {"name": "title", "schema": SCHEMA}})
    fmt = CODEC.encode_request(schema)["outputConfig"]["textFormat"]
    assert fmt["type"] == "json_schema" and json.loads(fmt["structure"]["jsonSchema"]["schema"]) == SCHEMA
    assert fmt["structure"]["jsonSchema"]["name"] == "title"


def test_request_round_trip_through_decode_request():
    req = rich_request(tool_choice=ToolChoice("tool", name="tree"))
    body = CODEC.encode_request(req)
    back = CODEC.decode_request(dict(body, modelId=CLAUDE))
    assert back.model == CLAUDE and back.source_format == "bedrock_converse"
    assert [t.name for t in back.tools] == ["tree", "read"] and back.tools[1].cache_control == EPHEMERAL
    assert back.tool_choice == ToolChoice("tool", name="tree")
    assert back.system[1].cache_control == EPHEMERAL
    assert back.reasoning == Reasoning(enabled=True, budget_tokens=4000)
    assert CODEC.encode_request(back) == body  # same-format extras pass, blocks identical


# --------------------------------------------------------------------------- responses


def test_decode_response_usage_and_blocks():
    body = {"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "thinking...", "signature": "sig"}}},
        {"text": "Listing."},
        {"toolUse": {"toolUseId": "tooluse_1", "name": "tree", "input": {"path": "src"}}}]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 12, "outputTokens": 30, "totalTokens": 1542,
                  "cacheReadInputTokens": 1000, "cacheWriteInputTokens": 500},
        "metrics": {"latencyMs": 900}}
    resp = CODEC.decode_response(body, model=CLAUDE)
    assert resp.model == CLAUDE and resp.stop_reason == "tool_use"
    assert resp.content == [ThinkingBlock("thinking...", signature="sig"), TextBlock("Listing."),
                            ToolUseBlock("tooluse_1", "tree", {"path": "src"})]
    # Bedrock's inputTokens excludes cache reads/writes; canonical input_tokens includes them.
    assert resp.usage == Usage(input_tokens=1512, output_tokens=30, cache_read_tokens=1000, cache_write_tokens=500)
    assert CODEC.usage_from_response(body) == resp.usage
    for bedrock, canonical in [("end_turn", "end_turn"), ("max_tokens", "max_tokens"),
                               ("stop_sequence", "stop_sequence"), ("guardrail_intervened", "refusal"),
                               ("content_filtered", "refusal"), ("malformed_tool_use", "error")]:
        assert CODEC.decode_response(dict(body, stopReason=bedrock)).stop_reason == canonical
    with pytest.raises(GatewayError):
        CODEC.decode_response({"message": "not a converse body"})


def test_encode_response_round_trip():
    resp = Response(id="x", model=CLAUDE, content=[ThinkingBlock("t", "s"), TextBlock("hi"),
                                                   ToolUseBlock("tooluse_1", "tree", {"a": 1})],
                    stop_reason="tool_use",
                    usage=Usage(input_tokens=1512, output_tokens=30, cache_read_tokens=1000, cache_write_tokens=500))
    body = CODEC.encode_response(resp, Request(model=CLAUDE, messages=[]))
    assert body["usage"] == {"inputTokens": 12, "outputTokens": 30, "totalTokens": 1542,
                             "cacheReadInputTokens": 1000, "cacheWriteInputTokens": 500}
    back = CODEC.decode_response(body, model=CLAUDE)
    assert back.content == resp.content and back.usage == resp.usage and back.stop_reason == "tool_use"
    with pytest.raises(NotImplementedError):
        CODEC.stream_encoder(Request(model=CLAUDE, messages=[]))


def test_errors():
    throttled = CODEC.decode_error(429, b'{"message":"Too many requests, please wait before trying again."}')
    assert throttled.type == "rate_limit" and throttled.retryable and throttled.status == 429
    assert "Too many requests" in throttled.message
    long = CODEC.decode_error(400, b'{"message":"Input is too long for requested model."}')
    assert long.type == "context_length" and not long.retryable
    assert CODEC.decode_error(400, b'{"message":"bad"}').type == "invalid_request"
    assert CODEC.decode_error(503, b'{"message":"unavailable"}').type == "overloaded"
    assert CODEC.decode_error(424, b'{"message":"model error"}').retryable
    typed = CODEC.decode_error(400, b'{"__type":"com.amazon.coral.service#ThrottlingException","message":"slow"}')
    assert typed.type == "rate_limit" and typed.status == 400
    for junk in (b"", b"<html>", b"\xff\xfe", b"[]", b'{"message": 3}'):
        err = CODEC.decode_error(500, junk)
        assert isinstance(err, GatewayError) and err.status == 500 and err.message
    assert CODEC.encode_error(GatewayError("rate_limit", "slow", 429)) == (429, {"message": "slow"})


# --------------------------------------------------------------------------- helpers: aws.py


def test_sign_request_headers():
    creds = resolve_credentials(ACCESS_KEY, SECRET_KEY, "session-token-1")
    assert isinstance(creds, ReadOnlyCredentials) and creds.token == "session-token-1"
    url = runtime_endpoint("us-east-1") + converse_path(CLAUDE)
    headers = sign_request("POST", url, {"Content-Type": "application/json"}, b"{}", region="us-east-1",
                           credentials=creds)
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Amz-Security-Token"] == "session-token-1"
    auth = headers["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=%s/%s/us-east-1/bedrock/aws4_request, " % (
        ACCESS_KEY, headers["X-Amz-Date"][:8]))
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=" in auth
    with pytest.raises(GatewayError):
        sign_request("POST", url, {}, b"", region="us-east-1", credentials=None)


def test_resolve_credentials_chain(tmp_path, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    shared = tmp_path / "credentials"
    shared.write_text("[dev]\naws_access_key_id = AKIADEV\naws_secret_access_key = devsecret\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(shared))
    assert resolve_credentials(profile="dev") == ReadOnlyCredentials("AKIADEV", "devsecret", None, None)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    env = resolve_credentials()
    assert (env.access_key, env.secret_key) == ("AKIAENV", "envsecret")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(GatewayError):
        resolve_credentials()  # nothing anywhere (default profile absent, IMDS disabled)
    with pytest.raises(GatewayError):
        resolve_credentials(profile="nope")
    with pytest.raises(GatewayError):
        resolve_credentials(access_key_id="AKIAONLY")


def test_event_stream_decoder_message_types():
    frames = (event_frame("messageStart", {"role": "assistant"}, pad=4)
              + exception_frame("throttlingException", "slow down")
              + frame({":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"}, b"")
              + frame({":event-type": "weird", ":message-type": "event"}, b"not json"))
    dec = EventStreamDecoder()
    out = []
    for i in range(len(frames)):
        out += dec.feed(frames[i:i + 1])
    assert not dec.pending()
    half = EventStreamDecoder()
    assert half.feed(frames[:20]) == [] and half.pending()
    assert out[0][:2] == ("messageStart", "event") and out[0][2]["role"] == "assistant"
    assert out[1] == ("throttlingException", "exception", {"message": "slow down"})
    assert out[2] == ("InternalFailure", "error", {"message": "boom"})
    assert out[3] == ("weird", "event", {"message": "not json"})
    bad = bytearray(event_frame("messageStart", {"role": "assistant"}))
    bad[-6] ^= 0xFF  # payload byte: message CRC no longer matches
    with pytest.raises(EventStreamDecodeError):
        EventStreamDecoder().feed(bytes(bad))


# --------------------------------------------------------------------------- stream decoding


def frames_of(*events) -> bytes:
    return b"".join(event_frame(name, payload, pad=i) for i, (name, payload) in enumerate(events))


REFERENCE = frames_of(
    ("messageStart", {"role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Hmm, "}}}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "ok."}}}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "sig=="}}}),
    ("contentBlockStop", {"contentBlockIndex": 0}),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"reasoningContent": {"redactedContent": "AAA"}}}),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"reasoningContent": {"redactedContent": "BBB"}}}),
    ("contentBlockStop", {"contentBlockIndex": 1}),
    ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"text": "Héllo"}}),
    ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"text": " wörld"}}),
    ("contentBlockStop", {"contentBlockIndex": 2}),
    ("contentBlockStart", {"contentBlockIndex": 3, "start": {"toolUse": {"toolUseId": "tooluse_A", "name": "tree"}}}),
    ("contentBlockDelta", {"contentBlockIndex": 3, "delta": {"toolUse": {"input": "{\"path\":"}}}),
    ("contentBlockDelta", {"contentBlockIndex": 3, "delta": {"toolUse": {"input": "\"src\"}"}}}),
    ("contentBlockStop", {"contentBlockIndex": 3}),
    ("messageStop", {"stopReason": "tool_use"}),
    ("metadata", {"usage": {"inputTokens": 10, "outputTokens": 20, "totalTokens": 130, "cacheReadInputTokens": 100},
                  "metrics": {"latencyMs": 55}}),
)

EXPECTED = [
    MessageStart(id="ID", model=CLAUDE),
    BlockStart(0, ThinkingBlock("")),
    BlockDelta(0, "thinking", "Hmm, "),
    BlockDelta(0, "thinking", "ok."),
    BlockDelta(0, "signature", "sig=="),
    BlockStop(0),
    BlockStart(1, RedactedThinkingBlock("AAABBB")),
    BlockStop(1),
    BlockStart(2, TextBlock("")),
    BlockDelta(2, "text", "Héllo"),
    BlockDelta(2, "text", " wörld"),
    BlockStop(2),
    BlockStart(3, ToolUseBlock("tooluse_A", "tree", {})),
    BlockDelta(3, "json", "{\"path\":"),
    BlockDelta(3, "json", "\"src\"}"),
    BlockStop(3),
    MessageDelta(stop_reason="tool_use",
                 usage=Usage(input_tokens=110, output_tokens=20, cache_read_tokens=100)),
    MessageStop(),
]


def decode_all(chunks, model=CLAUDE):
    dec = CODEC.stream_decoder(model=model)
    events = []
    for c in chunks:
        events += dec.feed(c)
    return events + dec.close()


def normalise(events):
    return [MessageStart(id="ID", model=e.model, usage=e.usage) if isinstance(e, MessageStart) else e for e in events]


def test_stream_decode_reference_and_every_split():
    assert normalise(decode_all([REFERENCE])) == EXPECTED
    for cut in range(1, len(REFERENCE)):
        assert normalise(decode_all([REFERENCE[:cut], REFERENCE[cut:]])) == EXPECTED, cut
    assert normalise(decode_all([REFERENCE[i:i + 1] for i in range(len(REFERENCE))])) == EXPECTED
    for size in (3, 11, 64, 500):
        assert normalise(decode_all([REFERENCE[i:i + size] for i in range(0, len(REFERENCE), size)])) == EXPECTED


def test_stream_metadata_after_message_stop_and_truncation():
    # messageStop seen, metadata never comes: MessageDelta + MessageStop at close(), usage unknown
    stop_only = frames_of(("messageStart", {"role": "assistant"}),
                          ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}}),
                          ("messageStop", {"stopReason": "max_tokens"}))
    dec = CODEC.stream_decoder()
    events = dec.feed(stop_only)
    assert not any(isinstance(e, (MessageDelta, MessageStop)) for e in events)
    assert isinstance(events[-1], BlockStop)  # open text block closed by messageStop
    tail = dec.close()
    assert tail == [MessageDelta(stop_reason="max_tokens", usage=None), MessageStop()]
    # cut before messageStop: an error, never a silent truncation
    cut = decode_all([stop_only[:-20]])
    assert isinstance(cut[-1], StreamError) and cut[-1].type == "bad_gateway" and cut[-1].status == 502


@pytest.mark.parametrize("name,type_,status", [
    ("throttlingException", "rate_limit", 429),
    ("serviceUnavailableException", "overloaded", 503),
    ("validationException", "invalid_request", 400),
    ("modelStreamErrorException", "api_error", 500),
    ("internalServerException", "api_error", 500),
])
def test_exception_frames(name, type_, status):
    data = frames_of(("messageStart", {"role": "assistant"}),
                     ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "par"}})) \
        + exception_frame(name, "%s happened" % name) + frames_of(("messageStop", {"stopReason": "end_turn"}))
    for chunks in ([data], [data[i:i + 5] for i in range(0, len(data), 5)]):
        events = decode_all(chunks)
        assert events[-1] == StreamError(type_, "%s happened" % name, status)
        assert not any(isinstance(e, MessageStop) for e in events)


def test_corrupt_stream():
    bad = bytearray(REFERENCE)
    bad[30] ^= 0x01
    events = decode_all([bytes(bad)])
    assert len(events) == 1 and isinstance(events[0], StreamError) and events[0].type == "bad_gateway"
    assert decode_all([b"<html>502 Bad Gateway</html>" * 2])[-1].type == "bad_gateway"


# --------------------------------------------------------------------------- the fake, over loopback


@pytest.fixture(scope="module")
def bedrock():
    server = FakeBedrock().start()
    yield server
    server.stop()


CREDS = ReadOnlyCredentials(ACCESS_KEY, SECRET_KEY, None, None)


def call(server, model, request: Request, stream: bool, credentials=CREDS, region=REGION, tamper=None):
    body = json.dumps(CODEC.encode_request(request)).encode()
    url = server.url + converse_path(model, stream=stream)
    headers = sign_request("POST", url, {"Content-Type": "application/json"}, body, region=region,
                           credentials=credentials)
    if tamper:
        body = tamper(body)
    with httpx.Client(timeout=10) as client:
        if not stream:
            return client.post(url, content=body, headers=headers), None, None
        with client.stream("POST", url, content=body, headers=headers) as r:
            raw = b""
            try:
                for chunk in r.iter_raw():
                    raw += chunk
            except httpx.HTTPError:
                pass
            return r, raw, r.headers


def simple(model=CLAUDE, **kw) -> Request:
    return Request(model=model, messages=[Message("user", [TextBlock("List src please.")])],
                   tools=[Tool("tree", "List a tree", SCHEMA), Tool("read", "Read", SCHEMA)], max_tokens=1000, **kw)


def test_fake_stream_signed_request(bedrock):
    model = CLAUDE + "#thinking,tools,cached=100"
    r, raw, headers = call(bedrock, model, simple(), stream=True)
    assert r.status_code == 200 and headers["content-type"] == "application/vnd.amazon.eventstream"
    sent = bedrock.last()
    assert sent.path == "/model/%s/converse-stream" % model  # decoded by the server; sent encoded
    assert sent.body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "tree"
    reference = decode_all([raw], model=CLAUDE)
    kinds = [type(e).__name__ for e in reference]
    assert kinds == ["MessageStart", "BlockStart", "BlockDelta", "BlockDelta", "BlockDelta", "BlockDelta",
                     "BlockStop", "BlockStart", "BlockDelta", "BlockDelta", "BlockDelta", "BlockDelta", "BlockStop",
                     "MessageDelta", "MessageStop"]
    assert reference[5].kind == "signature"
    assert reference[7].block.name == "tree"
    assert json.loads("".join(e.value for e in reference if isinstance(e, BlockDelta) and e.kind == "json")) == \
        {"path": "src", "depth": 2}
    usage = reference[-2].usage
    assert usage.cache_read_tokens == 100 and usage.input_tokens == bedrock_prompt_tokens(sent.body) + 100
    # byte-split robustness on the real frames
    for cut in range(1, len(raw), 3):
        assert normalise(decode_all([raw[:cut], raw[cut:]])) == normalise(reference)
    assert normalise(decode_all([raw[i:i + 1] for i in range(len(raw))])) == normalise(reference)

    # the non-streaming answer carries the same content
    r, _, _ = call(bedrock, model, simple(), stream=False)
    assert r.status_code == 200
    resp = CODEC.decode_response(r.json(), model=CLAUDE)
    assert [type(b).__name__ for b in resp.content] == ["ThinkingBlock", "ToolUseBlock"]
    assert resp.content[1].input == {"path": "src", "depth": 2} and resp.stop_reason == "tool_use"
    assert resp.usage == usage


def bedrock_prompt_tokens(body):
    return max(1, len(json.dumps(body.get("messages", ""))) // 4)


def test_fake_rejects_bad_signatures(bedrock):
    before = bedrock.rejected_signatures
    wrong_secret = ReadOnlyCredentials(ACCESS_KEY, "not-the-secret", None, None)
    r, _, _ = call(bedrock, CLAUDE, simple(), stream=False, credentials=wrong_secret)
    assert r.status_code == 403
    assert r.json()["message"].startswith("The request signature we calculated does not match")
    assert r.headers["x-amzn-errortype"].startswith("InvalidSignatureException")
    err = CODEC.decode_error(r.status_code, r.content)
    assert err.status == 403 and not err.retryable and "signature" in err.message
    # signed correctly, body changed afterwards
    r, _, _ = call(bedrock, CLAUDE, simple(), stream=False, tamper=lambda b: b.replace(b"src", b"etc"))
    assert r.status_code == 403
    # signed for the wrong region
    r, _, _ = call(bedrock, CLAUDE, simple(), stream=True, region="eu-west-1")
    assert r.status_code == 403
    assert bedrock.rejected_signatures == before + 3
    # unknown access key / no auth at all
    r, _, _ = call(bedrock, CLAUDE, simple(), stream=False, credentials=ReadOnlyCredentials("AKIAOTHER", "x", None, None))
    assert r.status_code == 403 and "security token" in r.json()["message"]
    r = httpx.post(bedrock.url + converse_path(CLAUDE), json={"messages": []})
    assert r.status_code == 403


def test_fake_throttling_and_mid_stream_errors(bedrock):
    r, raw, _ = call(bedrock, CLAUDE + "#status=429", simple(), stream=True)
    assert r.status_code == 429 and r.headers["x-amzn-errortype"].startswith("ThrottlingException:")
    err = CODEC.decode_error(429, raw)
    assert err.type == "rate_limit" and err.retryable

    r, raw, _ = call(bedrock, CLAUDE + "#mid_error", simple(), stream=True)
    events = decode_all([raw])
    assert events[-1].type == "api_error" and events[-1].status == 500
    assert sum(isinstance(e, BlockDelta) for e in events) == 2  # messageStart + 2 deltas, then the exception
    r, raw, _ = call(bedrock, CLAUDE + "#mid_error=throttlingException", simple(), stream=True)
    assert decode_all([raw])[-1] == StreamError("rate_limit", "The model stream failed: injected by the fake.", 429)

    r, raw, _ = call(bedrock, CLAUDE + "#drop_after=4", simple(), stream=True)
    events = decode_all([raw])
    assert isinstance(events[-1], StreamError) and events[-1].type == "bad_gateway"

    r, raw, _ = call(bedrock, CLAUDE + "#no_usage", simple(), stream=True)
    events = decode_all([raw])
    assert events[-2] == MessageDelta(stop_reason="end_turn", usage=None) and isinstance(events[-1], MessageStop)


def test_usage_helper_is_total_inclusive():
    assert usage_from_bedrock({"inputTokens": 3, "outputTokens": 4, "cacheWriteInputTokens": 7}) == \
        Usage(input_tokens=10, output_tokens=4, cache_write_tokens=7)
    assert usage_from_bedrock(None) == Usage()


def test_fake_stream_via_aiohttp_with_encoded_url(bedrock):
    """The gateway's adapters use aiohttp: yarl re-quotes URLs (%3A -> ':') unless told the
    URL is already encoded, and the signature covers the exact path, so pass encoded=True."""
    import asyncio

    import aiohttp
    import yarl

    async def run() -> tuple[int, bytes]:
        model = CLAUDE + "#tokens=3"
        body = json.dumps(CODEC.encode_request(simple())).encode()
        url = bedrock.url + converse_path(model, stream=True)
        headers = sign_request("POST", url, {"content-type": "application/json", "accept-encoding": "identity"},
                               body, region=REGION, credentials=CREDS)
        async with aiohttp.ClientSession() as session:
            async with session.post(yarl.URL(url, encoded=True), data=body, headers=headers) as r:
                return r.status, await r.read()

    status, raw = asyncio.run(run())
    assert status == 200
    events = decode_all([raw])
    assert "".join(e.value for e in events if isinstance(e, BlockDelta)) == "tok0 tok1 tok2"
    assert isinstance(events[-1], MessageStop)
