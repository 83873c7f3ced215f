"""Property-based fuzzing (hypothesis) of everything that reads client or upstream
bytes: every front door's request decoding (validate → features → decode → encode
for every upstream format) and every codec's stream decoder (→ every client
encoder). Arbitrary JSON and arbitrary bytes must give a client-format error
(GatewayError) or a valid translation: never another exception (a 500 for the
client) and never a hang (hypothesis' per-example deadline). Bounded: a few hundred
examples in all, well under a minute."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.proxy.app import DOORS
from gateway.proxy.forward import decode_client_request
from providers.codecs import MODULES, get_codec
from providers.codecs import canonical as c
from providers.codecs.errors import GatewayError
from routing.features import extract_features

FUZZ = settings(
    max_examples=25, deadline=2000, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

# Field names and type tags of every wire format, so generated bodies reach past the
# first type check into the decoders' inner branches.
KEYS = [
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "tool_calls",
    "tools",
    "function",
    "name",
    "arguments",
    "input",
    "tool_use_id",
    "tool_call_id",
    "system",
    "max_tokens",
    "stream",
    "image_url",
    "url",
    "source",
    "data",
    "media_type",
    "thinking",
    "signature",
    "reasoning",
    "effort",
    "tool_choice",
    "response_format",
    "json_schema",
    "schema",
    "stop",
    "temperature",
    "id",
    "call_id",
    "output",
    "instructions",
    "max_output_tokens",
    "options",
    "images",
    "format",
    "parameters",
    "input_schema",
    "cache_control",
    "stream_options",
    "include_usage",
    "n",
    "top_p",
    "metadata",
    "previous_response_id",
    "store",
    "summary",
    "encrypted_content",
    "image",
    "detail",
    "is_error",
    "budget_tokens",
    "num_predict",
    "max_completion_tokens",
    "reasoning_effort",
    "parallel_tool_calls",
    "disable_parallel_tool_use",
    "strict",
    "description",
    "tool_name",
    "think",
    "keep_alive",
    "stop_sequences",
    "top_k",
    "seed",
    "user",
]
TAGS = [
    "text",
    "image",
    "image_url",
    "tool_use",
    "tool_result",
    "function",
    "message",
    "function_call",
    "function_call_output",
    "reasoning",
    "input_text",
    "output_text",
    "input_image",
    "thinking",
    "redacted_thinking",
    "json_schema",
    "json_object",
    "auto",
    "none",
    "required",
    "any",
    "tool",
    "user",
    "assistant",
    "system",
    "developer",
    "base64",
    "url",
    "web_search",
    "enabled",
    "low",
    "high",
    "ephemeral",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(TAGS)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=15,
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "developer"])},
    optional={
        "content": json_values,
        "tool_calls": json_values,
        "name": json_values,
        "tool_call_id": json_values,
        "images": json_values,
        "thinking": json_values,
    },
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"model": st.just("m"), "messages": st.lists(message, min_size=1, max_size=4)},
        optional={
            k: json_values
            for k in (
                "max_tokens",
                "tools",
                "tool_choice",
                "system",
                "stream",
                "response_format",
                "reasoning",
                "thinking",
                "stop",
                "options",
                "temperature",
            )
        },
    ),
    st.fixed_dictionaries(
        {"model": st.just("m"), "input": st.text(max_size=10) | st.lists(json_values, max_size=4)},
        optional={
            k: json_values
            for k in (
                "instructions",
                "tools",
                "tool_choice",
                "reasoning",
                "text",
                "max_output_tokens",
                "stream",
            )
        },
    ),
)

DOOR_PATHS = sorted({door.name: path for path, door in DOORS.items()}.values())
UPSTREAMS = sorted(MODULES)


def _decode_like_the_gateway(door, body) -> list[bytes]:
    """What serve() and Exchange do with a parsed body, up to the upstream request."""
    if not isinstance(body, dict):
        return []
    door.validate(body)
    extract_features(door.format, body, {}, raw=orjson.dumps(body))
    codec = get_codec(door.format)
    if door.endpoint == "embeddings":
        return []
    if door.endpoint == "count_tokens":
        decode_client_request(codec, body, require_max_tokens=False)
        return []
    request = decode_client_request(codec, body)
    out = []
    for upstream in UPSTREAMS:
        try:
            out.append(orjson.dumps(get_codec(upstream).encode_request(request)))
        except GatewayError:
            pass  # the target cannot express it: a clear 400 for the client
    return out


@pytest.mark.parametrize("path", DOOR_PATHS)
@FUZZ
@given(body=bodies)
def test_every_front_door_decodes_or_refuses_arbitrary_json(path, body):
    door = DOORS[path]
    try:
        _decode_like_the_gateway(door, body)
    except GatewayError as exc:
        status, payload = get_codec(door.format).encode_error(exc)
        assert 400 <= status < 500 and orjson.dumps(payload)


@pytest.mark.parametrize("path", DOOR_PATHS)
@FUZZ
@given(raw=st.binary(max_size=200))
def test_every_front_door_refuses_arbitrary_bytes(path, raw):
    door = DOORS[path]
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return  # serve(): a 400 invalid_json
    try:
        _decode_like_the_gateway(door, body)
    except GatewayError:
        pass


def _sse_events(draw_json) -> st.SearchStrategy:
    event = st.tuples(
        st.sampled_from(
            [
                "",
                "message_start",
                "content_block_delta",
                "response.output_text.delta",
                "response.completed",
                "error",
                "message_stop",
                "ping",
            ]
        ),
        draw_json,
    )
    return st.lists(event, max_size=6).map(
        lambda evs: b"".join(
            (f"event: {e}\n".encode() if e else b"") + b"data: " + orjson.dumps(d) + b"\n\n" for e, d in evs
        )
    )


stream_bytes = st.one_of(
    st.binary(max_size=300),
    _sse_events(json_values),
    st.lists(json_values, max_size=6).map(
        lambda objs: b"".join(orjson.dumps(o) + b"\n" for o in objs)
    ),  # NDJSON
)


@pytest.mark.parametrize("upstream", UPSTREAMS)
@FUZZ
@given(data=stream_bytes, cuts=st.lists(st.integers(0, 300), max_size=4))
def test_every_stream_decoder_turns_arbitrary_bytes_into_events_or_a_stream_error(upstream, data, cuts):
    decoder = get_codec(upstream).stream_decoder()
    events = []
    start = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        events += decoder.feed(data[start:cut])
        start = max(start, cut)
    events += decoder.close()
    request = c.Request(model="m", messages=[], stream=True)
    for client in ("openai_chat", "anthropic_messages", "openai_responses", "ollama"):
        encoder = get_codec(client).stream_encoder(request)
        for event in events:
            assert isinstance(encoder.encode(event), bytes)
        assert isinstance(encoder.close(), bytes)


# --------------------------------------------------------------------------- over the wire
# The same bodies through the real server: whatever reaches a door, the answer is a
# JSON body with a status that is not a 500, in bounded time.


@pytest.fixture(scope="module")
def door_key():
    from gateway.services import key_issue

    return key_issue(username="fuzzer", name="fuzz")[1]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/responses",
        "/api/chat",
        "/v1/messages/count_tokens",
        "/v1/embeddings",
    ],
)
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)
@given(payload=st.one_of(bodies.map(orjson.dumps), st.binary(max_size=100)))
def test_no_body_makes_the_server_answer_500(gateway, door_key, path, payload):
    import httpx

    r = httpx.post(
        gateway.url + path,
        content=payload,
        timeout=15,
        headers={
            "authorization": f"Bearer {door_key}",
            "x-api-key": door_key,
            "content-type": "application/json",
        },
    )
    assert r.status_code != 500 and r.status_code < 600, r.text
    if r.status_code >= 400:
        assert isinstance(orjson.loads(r.content), dict)
