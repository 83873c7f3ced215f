"""Stream pipelines between an upstream response and the client.

Every pipeline has `feed(bytes) -> bytes` (what to send the client now) and
`close() -> bytes` (the tail; an error event if the upstream stream ended early),
and keeps the request's usage up to date as events go by.

- OpenAIChatTap: same-format OpenAI chat passthrough. Bytes go out as they came;
  only the usage chunk the gateway asked for on the client's behalf is removed.
  Events without usage are not parsed at all (the hot path).
- DecoderTap: same-format passthrough for the other formats: bytes unchanged, a
  codec decoder reads along for usage and completeness.
- Translator: cross-format: upstream codec decodes, client codec encodes.
"""

from __future__ import annotations

import orjson

from providers.codecs import canonical as c
from providers.codecs.base import Codec
from providers.codecs.openai_chat import decode_usage
from providers.codecs.errors import GatewayError
from providers.codecs.sse import normalise_newlines, parse_event

from .context import RequestContext


def openai_error_event(error: GatewayError) -> bytes:
    return b"data: " + orjson.dumps({"error": {"message": error.message, "type": "api_error",
                                                "code": error.type}}) + b"\n\n"


class OpenAIChatTap:
    __slots__ = ("ctx", "wants_usage", "buf", "done", "errored")

    def __init__(self, ctx: RequestContext, wants_usage: bool) -> None:
        self.ctx = ctx
        self.wants_usage = wants_usage
        self.buf = b""
        self.done = False
        self.errored = False

    def feed(self, chunk: bytes) -> bytes:
        buf = self.buf + chunk if self.buf else chunk
        if b"\r" in buf:
            buf = normalise_newlines(buf)
        end = buf.rfind(b"\n\n")
        if end < 0:
            self.buf = buf
            return b""
        complete, self.buf = buf[:end + 2], buf[end + 2:]
        if b'"usage":{' not in complete and b'"usage": {' not in complete and b'"error"' not in complete:
            # Hot path: nothing to read. ~one token per content event, kept for estimates.
            events = complete.count(b"\n\n")
            if b"[DONE]" in complete and (b"data: [DONE]" in complete or b"data:[DONE]" in complete):
                self.done = True
                events -= 1
            self.ctx.chunks += events
            if not self.wants_usage and b'"usage":null' in complete:
                complete = complete.replace(b',"usage":null', b"")
            return complete
        return self._slow(complete)

    def _slow(self, complete: bytes) -> bytes:
        out = []
        for event in complete.split(b"\n\n"):
            if not event:
                continue
            _, data = parse_event(event)  # `data:` with or without the space, comments skipped
            if data is not None and data.strip() == b"[DONE]":
                self.done = True
                out.append(event + b"\n\n")
                continue
            obj = None
            if data is not None:
                try:
                    obj = orjson.loads(data)
                except orjson.JSONDecodeError:
                    obj = None
            if isinstance(obj, dict):
                if obj.get("error") is not None and "choices" not in obj:
                    self.errored = True
                    err = obj["error"]
                    msg = err.get("message", "") if isinstance(err, dict) else str(err)
                    self.ctx.fail(502, "upstream_stream_error", str(msg))
                usage = obj.get("usage")
                if isinstance(usage, dict):
                    self.ctx.usage = decode_usage(usage)
                    if not obj.get("choices") and not self.wants_usage:
                        continue  # the usage chunk the client did not ask for
                self.ctx.chunks += 1
            if not self.wants_usage:
                event = event.replace(b',"usage":null', b"")
            out.append(event + b"\n\n")
        return b"".join(out)

    def close(self) -> bytes:
        tail = self.feed(b"\n\n") if self.buf.strip() else b""
        if self.done or self.errored:
            return tail
        error = GatewayError("bad_gateway", "upstream stream ended before completion", 502)
        self.ctx.fail(502, error.type, error.message)
        return tail + openai_error_event(error)

    def error(self, error: GatewayError) -> bytes:
        self.ctx.fail(error.status, error.type, error.message)
        return openai_error_event(error)


class _EventPipeline:
    """Shared event bookkeeping for DecoderTap and Translator."""

    def __init__(self, ctx: RequestContext, decoder_codec: Codec, encoder_codec: Codec,
                 client_request: c.Request) -> None:
        self.ctx = ctx
        self.decoder = decoder_codec.stream_decoder()
        self.encoder = encoder_codec.stream_encoder(client_request)
        self.usage = c.Usage()
        self.done = False
        self.errored = False

    def _observe(self, events: list) -> None:
        ctx = self.ctx
        for ev in events:
            if isinstance(ev, c.BlockDelta):
                ctx.chunks += 1
            elif isinstance(ev, c.MessageStart):
                c.merge_usage(self.usage, ev.usage)
            elif isinstance(ev, c.MessageDelta):
                c.merge_usage(self.usage, ev.usage)
            elif isinstance(ev, c.MessageStop):
                self.done = True
            elif isinstance(ev, c.StreamError):
                self.errored = True
                ctx.fail(ev.status if ev.status >= 400 else 502, ev.type, ev.message)
        if self.usage.input_tokens or self.usage.output_tokens:
            ctx.usage = self.usage

    def error(self, error: GatewayError) -> bytes:
        self.ctx.fail(error.status, error.type, error.message)
        return self.encoder.encode(c.StreamError(error.type, error.message, error.status))

    def _tail_events(self) -> list:
        events = self.decoder.close()
        self._observe(events)
        if not self.done and not self.errored:
            err = c.StreamError("bad_gateway", "upstream stream ended before completion", 502)
            events.append(err)
            self._observe([err])
        return events


class DecoderTap(_EventPipeline):
    def __init__(self, ctx: RequestContext, codec: Codec, client_request: c.Request) -> None:
        super().__init__(ctx, codec, codec, client_request)

    def feed(self, chunk: bytes) -> bytes:
        self._observe(self.decoder.feed(chunk))
        return chunk

    def close(self) -> bytes:
        events = self._tail_events()
        # Bytes were passed through as they came; only a synthesized error needs encoding.
        return b"".join(self.encoder.encode(ev) for ev in events
                        if isinstance(ev, c.StreamError) and ev.type == "bad_gateway" and not self.done)


class Translator(_EventPipeline):
    def feed(self, chunk: bytes) -> bytes:
        events = self.decoder.feed(chunk)
        if not events:
            return b""
        self._observe(events)
        encode = self.encoder.encode
        return b"".join(encode(ev) for ev in events)

    def close(self) -> bytes:
        events = self._tail_events()
        out = b"".join(self.encoder.encode(ev) for ev in events)
        if not self.errored:
            out += self.encoder.close()
        return out
