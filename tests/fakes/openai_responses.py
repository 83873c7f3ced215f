"""Fake OpenAI Responses API: POST /v1/responses (stream and not), GET /v1/responses/{id},
plus everything FakeOpenAI serves (/v1/chat/completions, /v1/embeddings, /v1/models).

Behaviour comes from the model name exactly as in tests.fakes.base (status=, retry_after=, hang,
first_delay, token_delay, tokens, drop_after, garbage, html_error, tools, parallel_tools,
no_usage, cached=), plus:

    mock:reasoning        a reasoning item (summary streamed, encrypted_content when the request
                          has include=["reasoning.encrypted_content"]) before the answer
    mock:length           status "incomplete", incomplete_details.reason "max_output_tokens"
    mock:context_length   400 context_length_exceeded

Byte layout follows the public API reference: every event is `event: <type>\\ndata: {json}\\n\\n`
with a `sequence_number` counting from 0; response.created and response.in_progress carry the
response object (status in_progress, output []); each output item is bracketed by
response.output_item.added / .done (message: content_part.added, output_text.delta...,
output_text.done, content_part.done; function_call: function_call_arguments.delta..., .done;
reasoning: reasoning_summary_part.added, reasoning_summary_text.delta..., .done,
reasoning_summary_part.done); the stream ends with response.completed (or response.incomplete)
carrying the full response with usage. There is no `[DONE]` line. drop_after counts events.
"""

from __future__ import annotations

import base64
import json
import time

from aiohttp import web

from .base import Behaviour, agent_call, prompt_tokens_of
from .openai import FakeOpenAI, invalid, output_limit

REASONING_TEXT = "**Planning the answer**\n\nThe user wants a short mock reply, so I will answer directly."


def context_length_error() -> dict:
    return {"error": {"message": "Your input exceeds the context window of this model. Please adjust your input "
                                 "and try again.",
                      "type": "invalid_request_error", "param": "input", "code": "context_length_exceeded"}}


def not_found_error(ident: str) -> dict:
    return {"error": {"message": f"Response with id '{ident}' not found.", "type": "invalid_request_error",
                      "param": None, "code": None}}


def event_bytes(obj: dict) -> bytes:
    return b"event: " + obj["type"].encode() + b"\ndata: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def function_tools(body: dict) -> list[tuple[str, str | None]]:
    """(name, namespace) of every function tool in a Responses request, namespaces flattened."""
    out: list[tuple[str, str | None]] = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "function" and tool.get("name"):
            out.append((tool["name"], None))
        elif tool.get("type") == "namespace":
            for inner in tool.get("tools") or []:
                if isinstance(inner, dict) and inner.get("type") == "function" and inner.get("name"):
                    out.append((inner["name"], tool.get("name")))
    return out


def split_words(text: str) -> list[str]:
    first, *rest = text.split(" ")
    return [first] + [" " + w for w in rest]


def check_responses_body(body: dict) -> web.Response | None:
    """Responses API rules a translating gateway can break (see tests/fakes/README.md)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return invalid("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    items = body.get("input")
    if isinstance(items, list) and not body.get("previous_response_id"):
        calls = set()
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            if item.get("type") in ("function_call", "custom_tool_call"):
                calls.add(item.get("call_id"))
            elif item.get("type") in ("function_call_output", "custom_tool_call_output") \
                    and item.get("call_id") not in calls:
                return invalid(f"No tool call found for function call output with call_id {item.get('call_id')}.",
                               f"input[{i}]")
    asked = body.get("max_output_tokens")
    limit = output_limit(body["model"].partition(":")[0])
    if isinstance(asked, int) and limit and asked > limit:
        return invalid(f"max_output_tokens is too large: {asked}. This model supports at most {limit} output "
                       f"tokens, whereas you provided {asked}.", "max_output_tokens", "invalid_value")
    return None


class FakeOpenAIResponses(FakeOpenAI):
    def __init__(self) -> None:
        super().__init__()
        self.stored: dict[str, dict] = {}

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_post("/v1/responses", self.responses)
        app.router.add_get("/v1/responses/{response_id}", self.get_response)

    def reset(self) -> None:
        super().reset()
        self.stored.clear()

    # ------------------------------------------------------------------ building blocks
    def calls(self, body: dict, behaviour: Behaviour) -> list[dict]:
        tools = function_tools(body)
        if "agent_turn" in behaviour.flags and tools:
            items = body.get("input") if isinstance(body.get("input"), list) else [{}]
            call = agent_call([name for name, _ in tools], (items or [{}])[-1].get("type") == "function_call_output")
            if call is None:
                return []
            namespace = dict(tools)[call[0]]
            item = {"id": "fc_fakeagent01", "type": "function_call", "status": "completed",
                    "arguments": json.dumps(call[1]), "call_id": "call_fakeagent01", "name": call[0]}
            return [dict(item, namespace=namespace) if namespace else item]
        if not (behaviour.tools or behaviour.parallel_tools) or not tools:
            return []
        specs = [(tools[0], {"path": "src", "depth": 2})]
        if behaviour.parallel_tools:
            specs.append((tools[1 if len(tools) > 1 else 0], {"path": "README.md"}))
        out = []
        for i, ((name, namespace), args) in enumerate(specs):
            item = {"id": "fc_fake%04d" % (i + 1), "type": "function_call", "status": "completed",
                    "arguments": json.dumps(args, separators=(",", ":")), "call_id": "call_fake%04d" % (i + 1),
                    "name": name}
            if namespace:
                item["namespace"] = namespace
            out.append(item)
        return out

    def responses_usage(self, body: dict, behaviour: Behaviour, output_tokens: int, reasoning_tokens: int = 0) -> dict:
        prompt = prompt_tokens_of(body) + behaviour.cached
        return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": behaviour.cached},
                "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
                "total_tokens": prompt + output_tokens}

    def response_object(self, body: dict, behaviour: Behaviour, ident: str, created: int, status: str,
                        output: list, usage: dict | None, incomplete: dict | None = None) -> dict:
        reasoning = body.get("reasoning") or {}
        text = body.get("text") or {}
        return {
            "id": ident, "object": "response", "created_at": created, "status": status, "background": False,
            "error": None, "incomplete_details": incomplete, "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "max_tool_calls": None,
            "model": behaviour.model, "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "safety_identifier": None, "service_tier": "default", "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity", "medium")},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
            "top_logprobs": 0, "top_p": body.get("top_p", 1.0), "truncation": body.get("truncation", "disabled"),
            "usage": usage, "user": body.get("user"), "metadata": body.get("metadata") or {},
        }

    def build(self, body: dict, behaviour: Behaviour, ident: str, created: int) -> tuple[dict, list[dict]]:
        """The final response object and the stream events (without sequence numbers) for a request."""
        calls = self.calls(body, behaviour)
        words = [] if calls else behaviour.words()
        reasoning_words = split_words(REASONING_TEXT) if "reasoning" in behaviour.flags else []
        encrypted = None
        if reasoning_words and "reasoning.encrypted_content" in (body.get("include") or []):
            encrypted = "gAAAAAB" + base64.urlsafe_b64encode(("fake-reasoning-state:" + ident).encode()).decode()
        incomplete = {"reason": "max_output_tokens"} if "length" in behaviour.flags else None
        status = "incomplete" if incomplete else "completed"
        events: list[dict] = []
        output: list[dict] = []

        if reasoning_words:
            oi, rid, text = len(output), "rs_fake%08d" % len(self.requests), "".join(reasoning_words)
            events.append({"type": "response.output_item.added", "output_index": oi,
                           "item": {"id": rid, "type": "reasoning", "summary": []}})
            events.append({"type": "response.reasoning_summary_part.added", "item_id": rid, "output_index": oi,
                           "summary_index": 0, "part": {"type": "summary_text", "text": ""}})
            for w in reasoning_words:
                events.append({"type": "response.reasoning_summary_text.delta", "item_id": rid, "output_index": oi,
                               "summary_index": 0, "delta": w, "obfuscation": "fake"})
            events.append({"type": "response.reasoning_summary_text.done", "item_id": rid, "output_index": oi,
                           "summary_index": 0, "text": text})
            events.append({"type": "response.reasoning_summary_part.done", "item_id": rid, "output_index": oi,
                           "summary_index": 0, "part": {"type": "summary_text", "text": text}})
            item = {"id": rid, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}
            if encrypted:
                item["encrypted_content"] = encrypted
            events.append({"type": "response.output_item.done", "output_index": oi, "item": item})
            output.append(item)

        if words:
            oi, mid, text = len(output), "msg_fake%08d" % len(self.requests), "".join(words)
            events.append({"type": "response.output_item.added", "output_index": oi,
                           "item": {"id": mid, "type": "message", "status": "in_progress", "content": [],
                                    "role": "assistant"}})
            events.append({"type": "response.content_part.added", "item_id": mid, "output_index": oi,
                           "content_index": 0,
                           "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}})
            for w in words:
                events.append({"type": "response.output_text.delta", "item_id": mid, "output_index": oi,
                               "content_index": 0, "delta": w, "logprobs": [], "obfuscation": "fake"})
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
            events.append({"type": "response.output_text.done", "item_id": mid, "output_index": oi,
                           "content_index": 0, "text": text, "logprobs": []})
            events.append({"type": "response.content_part.done", "item_id": mid, "output_index": oi,
                           "content_index": 0, "part": part})
            item = {"id": mid, "type": "message", "status": "incomplete" if incomplete else "completed",
                    "content": [part], "role": "assistant"}
            events.append({"type": "response.output_item.done", "output_index": oi, "item": item})
            output.append(item)

        for call in calls:
            oi, args = len(output), call["arguments"]
            events.append({"type": "response.output_item.added", "output_index": oi,
                           "item": dict(call, status="in_progress", arguments="")})
            for j in range(0, len(args), 7):
                events.append({"type": "response.function_call_arguments.delta", "item_id": call["id"],
                               "output_index": oi, "delta": args[j:j + 7], "obfuscation": "fake"})
            events.append({"type": "response.function_call_arguments.done", "item_id": call["id"],
                           "output_index": oi, "name": call["name"], "arguments": args})
            events.append({"type": "response.output_item.done", "output_index": oi, "item": call})
            output.append(call)

        output_tokens = len(words) + len(reasoning_words) + sum(len(c["arguments"]) // 4 for c in calls)
        usage = None if behaviour.no_usage else self.responses_usage(body, behaviour, output_tokens, len(reasoning_words))
        final = self.response_object(body, behaviour, ident, created, status, output, usage, incomplete)
        start = self.response_object(body, behaviour, ident, created, "in_progress", [], None)
        head = [{"type": "response.created", "response": start},
                {"type": "response.in_progress", "response": dict(start)}]
        tail = [{"type": "response.incomplete" if incomplete else "response.completed", "response": final}]
        return final, head + events + tail

    def stream_chunks(self, events: list[dict]) -> list[bytes]:
        out = []
        for seq, ev in enumerate(events):
            ev = dict(ev)
            # "type" and "sequence_number" first, as the real API writes them
            out.append(event_bytes({"type": ev.pop("type"), "sequence_number": seq, **ev}))
        return out

    # ------------------------------------------------------------------ handlers
    async def responses(self, request: web.Request) -> web.StreamResponse:
        started = await self.prelude(request, context_length_error, check_responses_body)
        if isinstance(started, web.StreamResponse):
            return started
        body, behaviour = started
        ident, created = "resp_fake%016d" % len(self.requests), int(time.time())
        final, events = self.build(body, behaviour, ident, created)
        if body.get("store", True):
            self.stored[ident] = final
        if not body.get("stream"):
            return web.json_response(final)
        return await self.stream(request, self.stream_chunks(events), behaviour)

    async def get_response(self, request: web.Request) -> web.Response:
        await self.record(request)
        ident = request.match_info["response_id"]
        if ident not in self.stored:
            return web.json_response(not_found_error(ident), status=404)
        return web.json_response(self.stored[ident])


if __name__ == "__main__":  # manual use: python -m tests.fakes.openai_responses PORT
    import sys
    import threading
    server = FakeOpenAIResponses()
    server.port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server.start()
    print(server.url, flush=True)
    threading.Event().wait()
