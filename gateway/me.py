"""/me/: a developer's own keys, spend against budgets, recent requests and sessions,
and agent setup snippets. Every query here is scoped to request.user."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Max
from django.http import HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from .models import UsageRecord, VirtualKey
from .reports.queries import Filters, budget_burn, now, top_sessions, totals
from .reports.views import session_data


def gateway_url(request) -> str:
    return (settings.GATEWAY_PUBLIC_URL or request.build_absolute_uri("/")).rstrip("/")


def agent_snippets(base: str, key: str = "jk-...") -> list[tuple[str, str]]:
    """Copy-paste setup for each agent (README § Point your agent at it)."""
    return [
        (
            "Goose",
            f"export GOOSE_PROVIDER=openai\nexport OPENAI_HOST={base}\nexport OPENAI_API_KEY={key}\n"
            "export GOOSE_MODEL=default",
        ),
        ("Claude Code", f"export ANTHROPIC_BASE_URL={base}\nexport ANTHROPIC_AUTH_TOKEN={key}"),
        (
            "Codex CLI",
            f'# ~/.codex/config.toml\nmodel = "default"\nmodel_provider = "junction"\n\n'
            f'[model_providers.junction]\nname = "Junction"\nbase_url = "{base}/v1"\n'
            f'env_key = "JUNCTION_API_KEY"\nwire_api = "responses"\n\n# shell\n'
            f"export JUNCTION_API_KEY={key}",
        ),
        (
            "opencode",
            '{"provider": {"junction": {"npm": "@ai-sdk/openai-compatible", "name": "Junction",\n'
            f'  "options": {{"baseURL": "{base}/v1", "apiKey": "{key}"}},\n'
            '  "models": {"default": {}}}}}',
        ),
        (
            "aider",
            f"export OPENAI_API_BASE={base}/v1\nexport OPENAI_API_KEY={key}\naider --model openai/default",
        ),
    ]


def own_keys(user):
    last_used = dict(
        UsageRecord.objects.filter(user=user, created_at__gte=now() - timedelta(days=90))
        .values("key_id")
        .annotate(last=Max("created_at"))
        .values_list("key_id", "last")
    )
    keys = list(VirtualKey.objects.filter(user=user).order_by("-created_at"))
    for key in keys:
        key.last_used = last_used.get(key.id)
    return keys


@login_required
def me(request):
    user = request.user
    moment = now()
    month_start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month = Filters(start=month_start, end=moment, user=user.id)
    week = Filters(start=moment - timedelta(days=7), end=moment, user=user.id)
    new_key = request.session.pop("new_key", None)
    return render(
        request,
        "me/index.html",
        {
            "keys": own_keys(user),
            "can_manage_keys": settings.GATEWAY_SELF_SERVICE_KEYS or user.is_staff,
            "budgets": budget_burn(moment, user=user.id),
            "month": totals(month),
            "week": totals(week),
            "recent": UsageRecord.objects.filter(user=user)
            .select_related("key")
            .order_by("-created_at")[:25],
            "sessions": top_sessions(week),
            "new_key": new_key,
            "snippets": agent_snippets(gateway_url(request), new_key or "jk-..."),
        },
    )


@login_required
def my_session(request, session_id: str):
    data = session_data(session_id, user_id=request.user.id)  # 404 for someone else's session
    return render(request, "reports/session.html", {**data, "base": "me/base.html"})


def _may_manage(user) -> bool:
    return settings.GATEWAY_SELF_SERVICE_KEYS or user.is_staff


@login_required
@require_POST
def issue_own_key(request):
    from .services import key_issue

    if not _may_manage(request.user):
        return HttpResponseForbidden("Ask an admin for a key (self-service keys are off).")
    name = request.POST.get("name", "").strip()[:100]
    _, plaintext = key_issue(username=request.user.get_username(), name=name)
    request.session["new_key"] = plaintext  # shown once, on the next page load, then gone
    return redirect("me")


@login_required
@require_POST
def revoke_own_key(request, key_id: int):
    from .services import key_revoke

    if not _may_manage(request.user):
        return HttpResponseForbidden("Ask an admin to revoke a key (self-service keys are off).")
    key = get_object_or_404(VirtualKey, id=key_id, user=request.user)
    key_revoke(key=str(key.id))
    messages.success(request, f"Key {key.prefix}… revoked.")
    return redirect("me")
