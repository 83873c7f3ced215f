"""Static proof that every format's codec satisfies the `Codec` Protocol (base.py).

Checked by mypy in `make lint`; nothing here runs (no codec is imported at run time,
so a process still loads only the formats it serves). tests/codecs/test_contract.py
checks at run time that the signatures match the Protocol exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .anthropic_messages import AnthropicMessagesCodec
    from .base import Codec
    from .bedrock_converse import BedrockConverseCodec
    from .ollama import OllamaCodec
    from .openai_chat import OpenAIChatCodec
    from .openai_responses import OpenAIResponsesCodec

    anthropic_messages: Codec = AnthropicMessagesCodec()
    bedrock_converse: Codec = BedrockConverseCodec()
    ollama: Codec = OllamaCodec()
    openai_chat: Codec = OpenAIChatCodec()
    openai_responses: Codec = OpenAIResponsesCodec()
