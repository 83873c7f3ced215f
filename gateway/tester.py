"""The admin's route tester: a pasted request through the real planner on a freshly
built snapshot, with the serving gateway's live circuit and latency stats. No provider is called."""

from __future__ import annotations

import orjson
from django import forms

from routing.features import extract_features
from routing.planner import plan_request
from routing.router import ResolutionError
from routing.rules import check, describe
from routing.selectors import with_routing
from routing.stats import RuntimeStats, target_of
from routing.strategies import price

from .snapshot import build_snapshot

FORMATS = (("openai_chat", "OpenAI chat completions (/v1/chat/completions)"),
           ("anthropic_messages", "Anthropic messages (/v1/messages)"),
           ("openai_responses", "OpenAI Responses (/v1/responses)"),
           ("ollama", "Ollama (/api/chat)"))


class JSONBodyField(forms.CharField):
    def to_python(self, value):
        value = super().to_python(value)
        try:
            body = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise forms.ValidationError("The body must be a JSON object.")
        return body


class TesterForm(forms.Form):
    format = forms.ChoiceField(choices=FORMATS, label="Client format")
    model = forms.CharField(required=False, help_text="Empty: the body's `model`.")
    body = JSONBodyField(widget=forms.Textarea(attrs={"rows": 16, "cols": 110,
                                                      "style": "font-family: monospace"}),
                         help_text="The request body as the client sends it.")
    headers = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 110}),
                              help_text="One `Name: value` per line, e.g. `agent-session-id: 20260422_1` or "
                                        "`x-claude-code-session-id: …`.")
    key = forms.ModelChoiceField(queryset=None, required=False, empty_label="(no key: no allow-list)",
                                 help_text="Apply this key's route allow-list, user and prefix.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from .models import VirtualKey

        self.fields["key"].queryset = VirtualKey.objects.select_related("user")

    def clean_headers(self):
        headers = {}
        for number, line in enumerate(self.cleaned_data["headers"].splitlines(), 1):
            if not line.strip():
                continue
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise forms.ValidationError(f"Line {number} is not `Name: value`.")
            headers[name.strip().lower().encode("latin-1")] = value.strip().encode("latin-1")
        return headers


def run_tester(stats: RuntimeStats, *, format: str, model: str, body: dict, headers: dict[bytes, bytes],
               key) -> dict:
    snapshot = with_routing(build_snapshot())
    key_info = snapshot.keys.get(key.key_hash) if key is not None else None
    model = model or str(body.get("model") or "")
    features = extract_features(format, body, headers, raw=orjson.dumps(body))
    result = {"model": model, "features": features.as_dict(texts=True), "key": key_info}
    try:
        decision = plan_request(snapshot, model, key_info, features, stats)
    except ResolutionError as exc:
        result["error"] = f"{exc.status} {exc.type}: {exc.message}"
        return result
    now = stats.clock()
    candidates = []
    for c in decision.plan.candidates:
        info = c.provider.models.get(c.model)
        seen = stats.get(c)
        candidates.append({
            "provider": c.provider.name, "type": c.provider.type, "model": c.model,
            "context_window": info.context_window if info else None, "price": price(c),
            "health": snapshot.health.get(c.provider.name, "unknown"),
            "circuit": stats.state(target_of(c), now),
            "ttft_ms": None if seen is None or seen.ttft is None else round(seen.ttft * 1000, 1),
            "in_flight": 0 if seen is None else seen.in_flight})
    rules = []
    route = snapshot.routes.get(decision.requested_route)
    for rule in route.rules if route is not None else ():
        failed = check(rule.conditions, features, key_info)
        outcome = "disabled" if not rule.enabled else "matches" if failed is None else f"fails on {failed}"
        target = f"route {rule.target_route}" if rule.target_route \
            else f"{rule.target_provider}/{rule.target_model}"
        rules.append({"name": rule.name, "conditions": describe(rule.conditions), "target": target,
                      "outcome": outcome, "applied": rule.name == decision.rule})
    result.update(decision=decision, route=decision.plan.route, requested_route=decision.requested_route,
                  rule=decision.rule, strategy=decision.strategy, candidates=candidates, rules=rules,
                  explanation=decision.explanation, summary=decision.summary())
    return result
