"""AWS Bedrock Runtime Converse / ConverseStream (upstream dialect).

The model id is not in the body: the adapter posts to
`/model/{modelId}/converse` or `/model/{modelId}/converse-stream` (see
`converse_path`) and signs the request with SigV4 (providers/aws.py).

Wire facts (Bedrock Runtime API reference / botocore's bedrock-runtime model):
- Content blocks: {text} {image: {format, source: {bytes: base64}}}
  {toolUse: {toolUseId, name, input}} {toolResult: {toolUseId, content: [{text}|{json}|{image}], status}}
  {reasoningContent: {reasoningText: {text, signature}} | {redactedContent: base64}}
  {cachePoint: {type: default, ttl?}} placed AFTER the block it closes.
- Empty text blocks are rejected; `toolConfig` must be present whenever the
  history holds toolUse/toolResult blocks; `toolChoice` has no "none" member.
- Usage: `inputTokens` EXCLUDES cache reads and writes, which are reported in
  `cacheReadInputTokens` / `cacheWriteInputTokens`; the canonical input_tokens is
  their sum (see canonical.py's token convention).
- Streams are `application/vnd.amazon.eventstream` frames: messageStart,
  contentBlockStart (tool use only: text blocks have none), contentBlockDelta,
  contentBlockStop, messageStop {stopReason}, then metadata {usage, metrics};
  exceptions arrive as frames with `:message-type: exception`.

Front door: Bedrock is never a front door here. decode_request/encode_response
are implemented (pure dict mapping, useful for tests and symmetry);
stream_encoder raises NotImplementedError because producing event-stream frames
would need hand-written binary framing (botocore has a decoder, no encoder).
"""

from __future__ import annotations

from .codec import CODEC, BedrockConverseCodec  # noqa: F401
from .request import (  # noqa: F401
    _DEFAULT_BUDGET,
    _EFFORT_BUDGET,
    _EMPTY_TOOL_RESULT,
    _cache_control,
    _cache_point,
    is_anthropic_model,
)
from .response import _STOP_REASONS_OUT, usage_to_bedrock  # noqa: F401
from .stream_in import BedrockStreamDecoder  # noqa: F401
from .wire import (  # noqa: F401
    _CONTEXT_PHRASES,
    _EXCEPTIONS,
    _IMAGE_FORMATS,
    _STOP_REASONS,
    _exception_error,
    _image,
    _image_block,
    converse_path,
    runtime_endpoint,
    usage_from_bedrock,
)
