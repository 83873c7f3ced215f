"""Fake AWS Bedrock Runtime: POST /model/{modelId}/converse and
/model/{modelId}/converse-stream.

Every request must carry a valid SigV4 signature for the fake's known test
credentials (ACCESS_KEY / SECRET_KEY, region REGION, service "bedrock"): the
fake recomputes it with botocore's SigV4Auth over the headers named in
SignedHeaders, the raw path and the raw body, and answers 403 like AWS when it
does not match.

Behaviours ride on the model id after a '#' (as in tests/fakes/ollama.py; model
ids contain ':' like "anthropic.claude-3-5-sonnet-20240620-v1:0"). The client
percent-encodes the id in the path, so '#' travels as %23:

    anthropic.claude-sonnet-4-v1:0                     normal answer
    ...#status=429          HTTP 429 ThrottlingException (x-amzn-ErrorType header, {"message"} body)
    ...#tools / #parallel_tools / #thinking / #cached=100 / #tokens=N / #length / #no_usage
    ...#mid_error           exception frame mid-stream (modelStreamErrorException after 3 frames)
    ...#mid_error=throttlingException   that exception type;  ...#mid_error=5  after 5 frames
    ...#drop_after=3  #hang  #first_delay=0.5  #token_delay=0.01  #garbage  #html_error  #context_length

Prompt caching, faithfully (without #cached=N), as on Claude models: the prompt is read
toolConfig.tools -> system -> messages, block by block, and a `cachePoint` block ends a
cacheable prefix (ttl 5m, or "1h"). The Anthropic fake's PromptCache does the rest: a request
reads the longest prefix ending at a cache point (or up to 20 blocks before one) that an
earlier request wrote, and writes the prefix up to its last cache point when that is at
least the model's minimum cacheable length (1,024 tokens; more for Haiku 3.5/4.5, Opus 4.5).
usage then reports `cacheReadInputTokens` / `cacheWriteInputTokens` and `inputTokens` only
the rest (totalTokens counts all). More than 4 cache points: a ValidationException.

Stream frames are real `application/vnd.amazon.eventstream` messages: botocore
can decode them but has no encoder, so `frame()` below writes them per the AWS
spec (prelude: total length, headers length, prelude CRC32; string headers;
payload; message CRC32, zlib.crc32). Payloads carry the `p` padding field real
Bedrock adds.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import struct
import uuid
import zlib
from datetime import datetime, timezone

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from .anthropic import MAX_BREAKPOINTS, PromptCache
from .base import Behaviour, FakeServer, agent_call, prompt_tokens_of

ACCESS_KEY = "AKIAJUNCTIONTEST0001"
SECRET_KEY = "jUnCt1on/TeSt/SeCrEt/kEy/000000000000000"
REGION = "us-east-1"
SERVICE = "bedrock"

ERRORS = {
    400: ("ValidationException", "The provided request is not valid"),
    403: ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
    404: ("ResourceNotFoundException", "Could not resolve the foundation model from the provided model identifier."),
    408: ("ModelTimeoutException", "Model has timed out in processing the request. Try your request again."),
    424: ("ModelErrorException", "The system encountered an unexpected error during processing. Try your request again."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error while processing the request."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}

SIGNATURE_MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your "
                      "AWS Secret Access Key and signing method. Consult the service documentation for details.")

_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def parse_behaviour(model_id: str) -> Behaviour:
    _, _, spec = (model_id or "").partition("#")
    b = Behaviour.parse("mock:" + spec)
    b.model = model_id
    return b


# --------------------------------------------------------------------------- frames


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message; all headers are strings (type 7)."""
    hbytes = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        hbytes += struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
    total = 12 + len(hbytes) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hbytes))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + hbytes + payload
    return message + struct.pack(">I", zlib.crc32(message) & 0xFFFFFFFF)


def event_frame(event_type: str, obj: dict, pad: int = 0) -> bytes:
    if pad:
        obj = dict(obj, p=_PADDING[: 1 + pad % len(_PADDING)])
    return frame({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
                 json.dumps(obj, separators=(",", ":")).encode())


def exception_frame(exception_type: str, message: str, **extra) -> bytes:
    return frame({":exception-type": exception_type, ":content-type": "application/json",
                  ":message-type": "exception"},
                 json.dumps({"message": message, **extra}, separators=(",", ":")).encode())


def check_conversation(body: dict) -> str | None:
    """Converse rules (docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html,
    Message): starts with a user message, roles alternate, every toolResult answers a toolUse
    of the previous turn and every toolUse is answered in the next one."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or (messages[0] or {}).get("role") != "user":
        return "A conversation must start with a user message. Try again with a conversation that starts with a " \
               "user message."
    uses: set = set()
    for i, m in enumerate(messages):
        role = (m or {}).get("role")
        if role not in ("user", "assistant"):
            return f"Value '{role}' at 'messages.{i + 1}.member.role' failed to satisfy constraint: Member must " \
                   f"satisfy enum value set: [user, assistant]"
        if i and role == messages[i - 1].get("role"):
            return "A conversation must alternate between user and assistant roles. Make sure the conversation " \
                   "alternates between user and assistant roles and try again."
        content = [b for b in (m.get("content") or []) if isinstance(b, dict)]
        results = {b["toolResult"].get("toolUseId") for b in content if isinstance(b.get("toolResult"), dict)}
        if results - uses or (uses and uses - results):
            return f"The number of toolResult blocks at messages.{i}.content exceeds the number of toolUse blocks " \
                   f"of previous turn." if results - uses else \
                   f"Expected toolResult blocks at messages.{i}.content for the following Ids: " \
                   + ", ".join(sorted(uses - results))
        uses = {b["toolUse"].get("toolUseId") for b in content if isinstance(b.get("toolUse"), dict)}
    return None


def converse_blocks(body: dict) -> list[tuple[str, int, dict | None]]:
    """(canonical JSON, tokens, cache point) per prompt block in the order the model reads
    them; a `cachePoint` block is no block of its own but marks the one before it."""
    out: list[tuple[str, int, dict | None]] = []

    def add(block, role: str | None = None) -> None:
        if not isinstance(block, dict):
            return
        if "cachePoint" in block:
            if out:
                bare, tokens, _ = out[-1]
                out[-1] = (bare, tokens, block["cachePoint"] or {"type": "default"})
            return
        bare = json.dumps({"role": role, **block} if role else block, sort_keys=True)
        out.append((bare, max(1, len(bare) // 4), None))

    for tool in (body.get("toolConfig") or {}).get("tools") or []:
        add(tool)
    for block in body.get("system") or []:
        add(block)
    for m in body.get("messages") or []:
        for block in (m or {}).get("content") or []:
            add(block, (m or {}).get("role"))
    return out


def aws_error(status: int, type_name: str | None = None, message: str | None = None) -> web.Response:
    default_type, default_message = ERRORS.get(status, ("InternalServerException", "Upstream error %d." % status))
    type_name = type_name or default_type
    return web.json_response({"message": message or default_message}, status=status, headers={
        "x-amzn-ErrorType": "%s:http://internal.amazon.com/coral/com.amazon.bedrock/" % type_name,
        "x-amzn-RequestId": str(uuid.uuid4())})


# --------------------------------------------------------------------------- server


class FakeBedrock(FakeServer):
    def __init__(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY, region: str = REGION,
                 session_token: str | None = None) -> None:
        super().__init__()
        self.access_key, self.secret_key, self.region, self.session_token = access_key, secret_key, region, session_token
        self.rejected_signatures = 0
        self.prompt_cache = PromptCache()

    def reset(self) -> None:
        super().reset()
        self.prompt_cache.clear()

    def routes(self, app: web.Application) -> None:
        app.router.add_post(r"/model/{model_id:.+}/{op:converse|converse-stream}", self.converse)

    # -- SigV4 verification

    def verify_signature(self, request: web.Request, raw: bytes) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        if not auth:
            return aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        algorithm, _, rest = auth.partition(" ")
        try:
            parts = dict(p.strip().split("=", 1) for p in rest.split(","))
            access_key, date, region, service, terminal = parts["Credential"].split("/")
            signed_names = parts["SignedHeaders"].split(";")
            signature = parts["Signature"]
            amz_date = request.headers["X-Amz-Date"]
        except (KeyError, ValueError):
            return aws_error(403, "IncompleteSignatureException", "Authorization header requires 'Credential', "
                             "'Signature' and 'SignedHeaders' parameters, and an X-Amz-Date header.")
        if algorithm != "AWS4-HMAC-SHA256" or terminal != "aws4_request" or "host" not in signed_names:
            return aws_error(403, "IncompleteSignatureException", "Unsupported signature algorithm or scope.")
        if access_key != self.access_key:
            return aws_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        if self.session_token is not None and request.headers.get("X-Amz-Security-Token") != self.session_token:
            return aws_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        try:
            when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return aws_error(403, "InvalidSignatureException", "Invalid X-Amz-Date.")
        if abs((datetime.now(timezone.utc) - when).total_seconds()) > 300 or date != amz_date[:8]:
            return aws_error(403, "InvalidSignatureException", "Signature expired or date mismatch.")
        headers = {}
        for name in signed_names:
            if name not in request.headers:
                return aws_error(403, "InvalidSignatureException", SIGNATURE_MISMATCH)
            headers[name] = request.headers.getall(name)[0]
        aws_request = AWSRequest(method=request.method, url="http://%s%s" % (request.headers["Host"], request.raw_path),
                                 headers=headers, data=raw)
        aws_request.context["timestamp"] = amz_date
        signer = SigV4Auth(ReadOnlyCredentials(self.access_key, self.secret_key, self.session_token), SERVICE, self.region)
        canonical = signer.canonical_request(aws_request)
        expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
        if not hmac.compare_digest(expected, signature) or region != self.region or service != SERVICE:
            self.rejected_signatures += 1
            return aws_error(403, "InvalidSignatureException", SIGNATURE_MISMATCH)
        return None

    # -- answers

    def tool_calls(self, body: dict, behaviour: Behaviour) -> list[dict]:
        specs = [t["toolSpec"] for t in (body.get("toolConfig") or {}).get("tools") or [] if "toolSpec" in t]
        if "agent_turn" in behaviour.flags and specs:
            last = (body.get("messages") or [{}])[-1].get("content") or []
            call = agent_call([s["name"] for s in specs], any("toolResult" in b for b in last if isinstance(b, dict)))
            return [] if call is None else [{"toolUseId": "tooluse_fAkEaGeNt01aBcDeFgHiJkLmN", "name": call[0],
                                             "input": call[1]}]
        if not (behaviour.tools or behaviour.parallel_tools) or not specs:
            return []
        calls = [{"toolUseId": "tooluse_fAkE0001aBcDeFgHiJkLmN", "name": specs[0]["name"],
                  "input": {"path": "src", "depth": 2}}]
        if behaviour.parallel_tools:
            calls.append({"toolUseId": "tooluse_fAkE0002aBcDeFgHiJkLmN", "name": specs[1 if len(specs) > 1 else 0]["name"],
                          "input": {"path": "README.md"}})
        return calls

    def usage(self, body: dict, behaviour: Behaviour, output_tokens: int) -> dict:
        cached = None if behaviour.cached else self.prompt_cache.usage(body, converse_blocks(body),
                                                                       behaviour.model)
        if cached is not None:
            read, written, total = cached
            prompt = max(0, total - read - written)
            return {"inputTokens": prompt, "outputTokens": output_tokens, "cacheReadInputTokens": read,
                    "cacheWriteInputTokens": written, "totalTokens": total + output_tokens}
        prompt = prompt_tokens_of(body)
        usage = {"inputTokens": prompt, "outputTokens": output_tokens,
                 "totalTokens": prompt + output_tokens + behaviour.cached}
        if behaviour.cached:
            usage["cacheReadInputTokens"] = behaviour.cached
            usage["cacheWriteInputTokens"] = 0
        return usage

    async def converse(self, request: web.Request) -> web.StreamResponse:
        rec = await self.record(request)
        denied = self.verify_signature(request, rec.raw)
        if denied is not None:
            return denied
        stream = request.match_info["op"] == "converse-stream"
        request["stream"] = stream
        behaviour = parse_behaviour(request.match_info["model_id"])
        body = rec.body
        if not isinstance(body, dict):
            return aws_error(400, "SerializationException", "Could not parse the request body.")
        problem = check_conversation(body)
        if problem:
            self.rejected.append(problem)
            return aws_error(400, "ValidationException", problem)
        if "context_length" in behaviour.flags:
            return aws_error(400, "ValidationException", "Input is too long for requested model.")
        points = sum(1 for b in converse_blocks(body) if b[2])
        if points > MAX_BREAKPOINTS:
            problem = f"The number of cache points ({points}) exceeds the maximum of {MAX_BREAKPOINTS}."
            self.rejected.append(problem)
            return aws_error(400, "ValidationException", problem)
        if behaviour.status:
            if behaviour.first_delay:
                await asyncio.sleep(behaviour.first_delay)
            response = aws_error(behaviour.status)
            if behaviour.retry_after:
                response.headers["retry-after"] = behaviour.retry_after
            return response
        failed = await self.maybe_fail(request, behaviour, lambda s: {"message": "unused"})
        if failed is not None:
            return failed

        calls = self.tool_calls(body, behaviour)
        words = [] if calls else behaviour.words()
        thinking = ["Let me", " think", " about it."] if "thinking" in behaviour.flags else []
        signature = "EqQBCkYIBRgCIkDfake" + "S" * 40
        output_tokens = len(words) + len(thinking) + 8 * len(calls)
        stop = "tool_use" if calls else ("max_tokens" if "length" in behaviour.flags else "end_turn")
        usage = self.usage(body, behaviour, output_tokens)

        if not stream:
            content: list[dict] = []
            if thinking:
                content.append({"reasoningContent": {"reasoningText": {"text": "".join(thinking), "signature": signature}}})
            if words:
                content.append({"text": "".join(words)})
            content += [{"toolUse": call} for call in calls]
            out = {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
                   "metrics": {"latencyMs": 321}}
            if not behaviour.no_usage:
                out["usage"] = usage
            return web.json_response(out, headers={"x-amzn-RequestId": str(uuid.uuid4())})

        frames = [event_frame("messageStart", {"role": "assistant"}, pad=3)]
        index = 0
        if thinking:
            frames += [event_frame("contentBlockDelta", {"contentBlockIndex": index,
                                                         "delta": {"reasoningContent": {"text": t}}}, pad=i)
                       for i, t in enumerate(thinking)]
            frames.append(event_frame("contentBlockDelta", {"contentBlockIndex": index,
                                                            "delta": {"reasoningContent": {"signature": signature}}}))
            frames.append(event_frame("contentBlockStop", {"contentBlockIndex": index}, pad=5))
            index += 1
        if words:
            frames += [event_frame("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": w}}, pad=i)
                       for i, w in enumerate(words)]
            frames.append(event_frame("contentBlockStop", {"contentBlockIndex": index}, pad=7))
            index += 1
        for call in calls:
            frames.append(event_frame("contentBlockStart", {"contentBlockIndex": index, "start": {
                "toolUse": {"toolUseId": call["toolUseId"], "name": call["name"]}}}, pad=2))
            args = json.dumps(call["input"], separators=(",", ":"))
            frames += [event_frame("contentBlockDelta", {"contentBlockIndex": index,
                                                         "delta": {"toolUse": {"input": args[j:j + 7]}}}, pad=j)
                       for j in range(0, len(args), 7)]
            frames.append(event_frame("contentBlockStop", {"contentBlockIndex": index}, pad=4))
            index += 1
        frames.append(event_frame("messageStop", {"stopReason": stop}, pad=9))
        if not behaviour.no_usage:
            frames.append(event_frame("metadata", {"usage": usage, "metrics": {"latencyMs": 321}}, pad=11))

        if "mid_error" in behaviour.flags:
            value = behaviour.flags["mid_error"]
            at = int(value) if value.isdigit() else 3
            name = value if value and not value.isdigit() else "modelStreamErrorException"
            extra = {"originalStatusCode": 500, "originalMessage": "model crashed"} \
                if name == "modelStreamErrorException" else {}
            frames = frames[:at] + [exception_frame(name, "The model stream failed: injected by the fake.", **extra)]
        return await self.stream(request, frames, behaviour, content_type="application/vnd.amazon.eventstream",
                                 headers={"x-amzn-RequestId": str(uuid.uuid4())})


if __name__ == "__main__":  # manual use: python -m tests.fakes.bedrock PORT
    import sys
    import threading
    server = FakeBedrock()
    server.port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server.start()
    print(server.url, "access key", ACCESS_KEY, "secret", SECRET_KEY, "region", REGION, flush=True)
    threading.Event().wait()
