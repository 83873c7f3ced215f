"""Front doors: one per client-facing endpoint. Each names its wire format and
does the cheap sanity checks that must hold before anything is forwarded; full
decoding into the canonical model happens only when a request is translated."""

from __future__ import annotations

from providers.codecs.errors import InvalidRequest


class FrontDoor:
    name = ""
    format = "openai_chat"
    endpoint = "generate"
    stream_default = False

    def validate(self, body: dict) -> None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("`model` is required and must be a non-empty string.", code="invalid_model")
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise InvalidRequest("`stream` must be a boolean.")

    def is_stream(self, body: dict) -> bool:
        return bool(body.get("stream", self.stream_default)) and self.endpoint == "generate"


def _check_messages(body: dict, required: bool = True) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or (required and not messages):
        raise InvalidRequest("`messages` is required and must be a non-empty array.", code="invalid_messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(f"`messages[{i}]` must be an object with a string `role`.", code="invalid_messages")


class OpenAIChatDoor(FrontDoor):
    name, format = "chat.completions", "openai_chat"

    def validate(self, body: dict) -> None:
        super().validate(body)
        _check_messages(body)


class OpenAIEmbeddingsDoor(FrontDoor):
    name, format, endpoint = "embeddings", "openai_chat", "embeddings"

    def validate(self, body: dict) -> None:
        super().validate(body)
        if not isinstance(body.get("input"), (str, list)):
            raise InvalidRequest("`input` is required: a string or an array.")


class AnthropicMessagesDoor(FrontDoor):
    name, format = "messages", "anthropic_messages"

    def validate(self, body: dict) -> None:
        super().validate(body)
        _check_messages(body)
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise InvalidRequest("max_tokens: Field required (a positive integer).")


class AnthropicCountTokensDoor(FrontDoor):
    name, format, endpoint = "messages.count_tokens", "anthropic_messages", "count_tokens"

    def validate(self, body: dict) -> None:
        super().validate(body)
        _check_messages(body)


class ResponsesDoor(FrontDoor):
    name, format = "responses", "openai_responses"

    def validate(self, body: dict) -> None:
        super().validate(body)
        if not isinstance(body.get("input"), (str, list)):
            raise InvalidRequest("`input` is required: a string or an array of items.")
        prev = body.get("previous_response_id")
        if prev is not None and not isinstance(prev, str):
            raise InvalidRequest("`previous_response_id` must be a string.")


class OllamaChatDoor(FrontDoor):
    name, format = "ollama.chat", "ollama"
    stream_default = True  # Ollama streams unless told otherwise

    def validate(self, body: dict) -> None:
        super().validate(body)
        _check_messages(body, required=False)
