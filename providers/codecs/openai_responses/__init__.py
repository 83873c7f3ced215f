"""OpenAI Responses API codec (`POST /v1/responses`), both directions.

Pure translation, no I/O, no Django. Decisions that other code relies on:

Tools
    * `{"type": "function", name, description, parameters, strict}` -> `Tool`; every other key of
      the function dict (strict included) is kept in `Tool.extra`. Encoding always sends `strict`
      explicitly (`False` when unknown) because the Responses API defaults it to *true*, which
      would reject ordinary non-strict schemas coming from other formats.
    * `{"type": "namespace", "name": NS, "tools": [...]}` (Codex) is flattened: each nested
      function becomes `Tool(name="NS__name")` with `extra["namespace"] = NS` (and
      `extra["namespace_description"]`). The `__` join is Codex's own canonical flat name
      (`ToolName::canonical_flat_name`). Encoding for a Responses peer re-nests the tools into
      the namespace (at the position of its first member) and splits tool calls back into
      `{"name": inner, "namespace": NS}`; the mapping comes from the tool list, never from
      string splitting. Function calls that arrive with a `namespace` field get the joined name.
    * Hosted tools (web_search, file_search, computer_use_preview, code_interpreter, mcp,
      custom, ... and namespaces holding non-function tools) become
      `Tool(name=<name or type>, extra={"hosted": <original dict>})`. This codec passes them
      through verbatim when the client spoke Responses too, and raises UnsupportedFeature for a
      `hosted` tool of any other source format; codecs of other formats must check
      `Tool.extra.get("hosted")` and raise UnsupportedFeature.

Reasoning items <-> ThinkingBlock
    * thinking = summary texts joined with a blank line (reasoning_text content if no summary).
    * signature = "<item id>|<encrypted_content>" (either side may be empty). The `|` marks a
      signature made by an OpenAI Responses peer; Fernet/base64 payloads and item ids never
      contain `|`. Encoding for a Responses upstream sends only such reasoning items, with
      `encrypted_content` and *without* the id when the encrypted content is known (what
      Codex does; ids of unstored items are rejected under `store: false`), and with only the
      id otherwise. Foreign thinking (Anthropic signatures, unsigned thinking, redacted
      thinking) cannot be verified by OpenAI and is dropped on the way to a Responses upstream.
    * Towards a Responses *client*, a foreign signature is wrapped into encrypted_content as
      "junction:sig:<signature>" and redacted thinking as "junction:redacted:<data>", so a
      client that replays its items (Codex does, with include=reasoning.encrypted_content)
      round-trips Anthropic thinking losslessly.
    Other codecs: a ThinkingBlock signature containing `|` belongs to OpenAI, not to you.

System / developer
    `instructions` and input messages with role system/developer go to `Request.system` (one
    TextBlock per text part). Their layout (instructions vs. developer message, part counts,
    position in the conversation) and input items the canonical model cannot express
    (web_search_call, item_reference, custom_tool_call, compaction, ...) are remembered in
    `Request.extra["_responses_layout"]` so that encoding for a Responses upstream of the same
    client format restores them in place. Extra keys starting with "_" are private: never sent.
    Cross-format, the system blocks become one `instructions` string.

Messages
    Item boundaries are kept where the canonical model allows: each user message item is its
    own canonical message; consecutive function_call_output items share one user message;
    assistant message / reasoning / function_call items that follow each other share one
    assistant message (so consecutive assistant *message* items are merged, the only loss).

Other
    * `store` sent upstream is `False` unless the (same-format) client explicitly sent one: the
      gateway keeps conversations itself and resolves `previous_response_id` before decoding.
    * Responses has no stop sequences: `Request.stop` raises UnsupportedFeature on encode.
    * Extras (include, prompt_cache_key, client_metadata, store, truncation, user, service_tier,
      ...) are copied upstream only when `request.source_format == "openai_responses"`.
    * Output items the canonical model cannot express (web_search_call, ...) coming back from an
      upstream are not translated; same-format routes should use the gateway's passthrough.
"""

from __future__ import annotations

from .codec import CODEC, OpenAIResponsesCodec  # noqa: F401
from .errors import _OUT_TYPES, _RETRY_RE, _retry_after, error_payload  # noqa: F401
from .request import (  # noqa: F401
    _FUNCTION_KEYS,
    _KNOWN_FIELDS,
    _TOOL_CHOICE_IN,
    NAME,
    _decode_function_tool,
    _decode_image,
    _decode_parts,
    _decode_tool_choice,
    _decode_tools,
    _encode_image,
    _image_url,
    _is_int,
    _is_num,
    _parse_arguments,
    _tool_output,
)
from .response import _lenient_arguments  # noqa: F401
from .stream_in import ResponsesStreamDecoder  # noqa: F401
from .stream_out import _FAILED_CODES, ResponsesStreamEncoder  # noqa: F401
from .wire import (  # noqa: F401
    _CODE_TYPES,
    _CONTEXT_RE,
    _RESERVED_TOOL_EXTRA,
    _TOOL_CHOICE_OUT,
    FOREIGN_SIG,
    LAYOUT_KEY,
    NS_SEP,
    REDACTED,
    _call_item,
    _echo_tools,
    _encode_tool_choice,
    _encode_tools,
    _error_type,
    _instructions_echo,
    _message_item,
    _namespace_map,
    _new_id,
    _reasoning_item,
    _status_for,
    _stop_reason,
    _summary_text,
    client_response_id,
    join_namespace,
    reasoning_block,
    response_object,
    split_signature,
    stream_error_from,
    usage_from,
    usage_to,
    web_search_item,
)
