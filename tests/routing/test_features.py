"""Request features read from real agent captures (shared/agents/)."""

from __future__ import annotations

import time

import orjson

from routing.features import detect_client, extract_features, session_id

from .build import capture, features_of

CC_TITLE = "claude-code/02-apikey-sonnet45-nonessential-on/002-v1_messages.json"
CC_MAIN = "claude-code/02-apikey-sonnet45-nonessential-on/004-v1_messages.json"  # 125 KB
CC_ADAPTIVE = "claude-code/01-authtoken-mockmodel/002-v1_messages.json"
CODEX_HIGH = "codex/02-responses-gpt5codex-effort-high/001-v1_responses.json"
CODEX_DEFAULT = "codex/01-responses-mock/001-v1_responses.json"
OPENCODE_TITLE = "opencode/01-openai-compatible-mock/001-v1_chat_completions.json"
OPENCODE_ANTHROPIC_TITLE = "opencode/02-anthropic-provider-sonnet45/001-v1_messages.json"
OPENCODE_MAIN = "opencode/01-openai-compatible-mock/002-v1_chat_completions.json"
AIDER = "aider/02-openai-gpt4o-edit-file/001-v1_chat_completions.json"


class TestClients:
    def test_each_agent_is_recognised_from_its_headers(self):
        assert features_of("goose/openai-chat.json").client == "goose"
        assert features_of("goose/ollama-chat.json").client == "goose"
        assert features_of(CC_MAIN).client == "claude-code"
        assert features_of(CODEX_HIGH).client == "codex"
        assert features_of(OPENCODE_MAIN).client == "opencode"

    def test_aider_sends_nothing_of_its_own_so_it_is_other_unless_a_header_says_aider(self):
        assert features_of(AIDER).client == "other"
        assert detect_client({b"user-agent": b"aider/0.86.2"}) == "aider"
        assert detect_client({b"x-title": b"Aider"}) == "aider"

    def test_claude_code_is_recognised_by_x_app_alone(self):
        assert detect_client({b"x-app": b"cli"}) == "claude-code"

    def test_session_ids_come_from_every_agents_header(self):
        assert features_of("goose/anthropic-messages.json").session_id == "20260422_1"
        assert features_of(CC_MAIN).session_id == "b67ac3bd-d947-4913-979a-de7550d52505"
        assert features_of(CODEX_HIGH).session_id == "01a21455-78e7-72f1-94dd-a7aac127a018"
        assert features_of(OPENCODE_MAIN).session_id == "ses_deba965a2ffeol0CIr90GIVowV"
        assert features_of(AIDER).session_id == ""
        assert session_id({b"x-session-id": b"abc"}) == "abc"

    def test_headers_may_be_the_asgi_list_of_pairs(self):
        features = extract_features("openai_chat", {"messages": []}, [(b"agent-session-id", b"s1")])
        assert features.client == "goose" and features.session_id == "s1"


class TestBodyFeatures:
    def test_tools_absent_and_empty_are_told_apart(self):
        assert features_of(OPENCODE_TITLE).tools is None
        assert features_of(CC_TITLE).tools == 0
        assert features_of(CC_MAIN).tools == 25
        assert features_of("goose/openai-chat.json").tools == 2

    def test_prompt_tokens_are_a_quarter_of_the_raw_body(self):
        fmt, body, headers, raw = capture(CC_MAIN)
        assert extract_features(fmt, body, headers, raw=raw).prompt_tokens == len(raw) // 4
        # Without the raw body: the serialised system, messages and tools, close to the same.
        estimate = extract_features(fmt, body, headers).prompt_tokens
        assert abs(estimate - len(raw) // 4) < len(raw) // 4 * 0.05

    def test_reasoning_effort_in_every_dialect(self):
        assert features_of(CC_MAIN).reasoning_effort == "high"  # thinking budget 31999
        assert features_of(CC_ADAPTIVE).reasoning_effort == "high"  # adaptive + output_config.effort high
        assert features_of(CC_TITLE).reasoning_effort == "none"  # thinking disabled
        assert features_of(CODEX_HIGH).reasoning_effort == "high"
        assert features_of(CODEX_DEFAULT).reasoning_effort == "none"
        assert features_of(CC_MAIN, thinking={"type": "enabled", "budget_tokens": 2048}).reasoning_effort == "low"
        assert features_of(CC_MAIN, thinking={"type": "enabled", "budget_tokens": 8000}).reasoning_effort == "medium"
        assert features_of(CC_ADAPTIVE, output_config={"effort": "low"}).reasoning_effort == "low"
        assert features_of("goose/openai-chat.json", reasoning_effort="medium").reasoning_effort == "medium"
        assert features_of("goose/ollama-chat.json", think=True).reasoning_effort == "medium"

    def test_max_output_tokens_in_every_dialect(self):
        assert features_of(CC_MAIN).max_output_tokens == 32000
        assert features_of("goose/openai-chat.json").max_output_tokens == 16384
        assert features_of("goose/openai-chat.json", max_completion_tokens=100).max_output_tokens == 100
        assert features_of("goose/ollama-chat.json").max_output_tokens == 4096  # options.num_predict
        assert features_of(CODEX_HIGH).max_output_tokens is None
        assert features_of(CODEX_HIGH, max_output_tokens=500).max_output_tokens == 500
        assert features_of(AIDER).max_output_tokens is None

    def test_images_are_found_in_every_dialect(self):
        png = {"type": "base64", "media_type": "image/png", "data": "iVBOR"}
        assert not features_of(CC_MAIN).has_images
        anthropic = extract_features("anthropic_messages", {"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": png}]}]}]}, {})
        assert anthropic.has_images
        chat = extract_features("openai_chat", {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]}]}, {})
        assert chat.has_images
        responses = extract_features("openai_responses", {"input": [{"role": "user", "content": [
            {"type": "input_image", "image_url": "data:image/png;base64,iVBOR"}]}]}, {})
        assert responses.has_images
        ollama = extract_features("ollama", {"messages": [{"role": "user", "content": "what?", "images": ["iVBOR"]}]},
                                  {})
        assert ollama.has_images

    def test_system_text_and_last_user_text(self):
        title = features_of(CC_TITLE)
        assert "Generate a concise, sentence-case title" in title.system_text
        assert title.last_user_text.startswith("<session>\nlist the files")
        codex = features_of(CODEX_HIGH)
        assert codex.last_user_text == "list files"
        goose = features_of("goose/anthropic-messages.json")
        # The last user message holds only a tool result: the last one with text is what was asked.
        assert goose.last_user_text.startswith("What files are in src/")
        assert "goose" in goose.system_text
        assert features_of(AIDER).last_user_text == "add a comment to b.py"


class TestSideCalls:
    def test_title_calls_of_claude_code_and_opencode_are_side_calls(self):
        assert features_of(CC_TITLE).side_call  # tools: [], json_schema output, max_tokens 32000
        assert features_of("claude-code/03-apikey-defaultmodel-bash/002-v1_messages.json").side_call
        assert features_of(OPENCODE_TITLE).side_call  # no tools, "title generator" system prompt
        assert features_of(OPENCODE_ANTHROPIC_TITLE).side_call

    def test_goose_session_naming_and_small_max_tokens_are_side_calls(self):
        naming = extract_features("openai_chat", {"messages": [
            {"role": "system", "content": "Reply with only a description in four words or less"},
            {"role": "user", "content": "list the files"}]}, {b"agent-session-id": b"s"})
        assert naming.side_call
        small = extract_features("openai_chat", {"max_tokens": 200, "messages": [
            {"role": "user", "content": "hello"}]}, {})
        assert small.side_call

    def test_main_calls_are_not_side_calls(self):
        assert not features_of("goose/openai-chat.json").side_call
        assert not features_of(CC_MAIN).side_call
        assert not features_of(OPENCODE_MAIN).side_call
        assert not features_of(CODEX_HIGH).side_call
        assert not features_of(AIDER).side_call  # no tools, but a long editing system prompt

    def test_a_request_with_tools_is_never_a_side_call(self):
        assert not features_of("goose/openai-chat.json", max_tokens=100).side_call


def test_extraction_works_on_the_125_kb_claude_code_body():
    fmt, body, headers, raw = capture(CC_MAIN)
    assert len(raw) > 120_000
    started = time.perf_counter()
    for _ in range(100):
        features = extract_features(fmt, body, headers, raw=raw)
        features.prompt_tokens, features.has_images, features.side_call
    per_call = (time.perf_counter() - started) / 100
    # Not a timing assertion (shared CI machines vary); measured here: ~5 µs with the raw body.
    print(f"extract_features on {len(raw)} bytes: {per_call * 1e6:.1f} µs")
    assert features.as_dict()["tools"] == 25
    assert orjson.dumps(features.as_dict(texts=True))
