"""Ollama native API (`POST /api/chat`), both directions.

Wire facts this codec relies on (Ollama API reference, docs/api.md):
- `stream` defaults to TRUE when absent; streams are NDJSON (one JSON object a
  line), the last object has `done: true`, `done_reason` (stop/length/...) and
  the counters `prompt_eval_count` / `eval_count` plus durations in nanoseconds.
- Messages are `{role: system|user|assistant|tool, content: str, images: [base64],
  thinking: str, tool_calls: [{function: {name, arguments: {...object...}}}],
  tool_name: str}`. Tool calls carry no ids (newer servers may add `id` /
  `function.index`; both are honoured when present).
- `think`: bool or "low"/"medium"/"high"; `format`: "json" or a JSON schema;
  `options`: temperature, top_p, stop, num_predict, num_ctx, seed, ...;
  `keep_alive`.
- Errors are `{"error": "message"}` with the HTTP status; a failure after the
  stream started is an `{"error": ...}` line.

Tool-call ids: Ollama has none, the canonical model needs them.
- Decoding a request: calls get stable positional ids `call_<n>` (n counts tool
  calls across the whole request, unless the message carries its own `id`), and
  each `tool` message is matched back to the earliest unanswered call of the
  preceding assistant turn (by `tool_call_id` if present, else by `tool_name`,
  else by order).
- Decoding a response/stream: ids are `call_<random>_<n>`, unique across turns,
  because a client may replay them later to an upstream that requires unique ids.
"""

from __future__ import annotations

from ..shared import guess_image_type  # noqa: F401 (public here before shared.py)
from .codec import CODEC, OllamaCodec  # noqa: F401
from .request import (  # noqa: F401
    _CANONICAL_OPTIONS,
    _KNOWN_KEYS,
    _image_data,
)
from .stream_in import OllamaStreamDecoder  # noqa: F401
from .stream_out import OllamaStreamEncoder, _dumps_line  # noqa: F401
from .wire import (  # noqa: F401
    _content_text,
    _done_reason,
    _now_rfc3339,
    _parse_arguments,
    _stop_from_done_reason,
)
