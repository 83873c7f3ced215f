"""Management API (DRF): reports as JSON, keys and budgets. Staff (can_view_spend) see and
manage everything; any other user sees only their own keys, budgets and usage. Session,
token (`Authorization: Token …`, see `manage.py drf_create_token`) or basic auth."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q
from rest_framework import serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import BasePermission, IsAdminUser, IsAuthenticated
from rest_framework.response import Response

from .models import Budget, VirtualKey
from .reports import filters as filter_bar
from .reports.access import can_view_spend
from .reports.queries import Filters
from .reports.views import BREAKDOWNS, STACKS, overview_data


class CanViewSpend(BasePermission):
    """Everyone's spend: staff with the `gateway.view_spend` permission (reports.access)."""

    def has_permission(self, request, view) -> bool:
        return can_view_spend(request.user)


class KeySerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = VirtualKey
        fields = (
            "id",
            "prefix",
            "name",
            "user",
            "active",
            "rpm_limit",
            "tpm_limit",
            "expires_at",
            "revoked_at",
            "created_at",
        )


class BudgetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Budget
        fields = ("id", "user", "key", "team", "amount_usd", "period", "hard", "created_at")

    def validate(self, attrs):
        if sum(attrs.get(owner) is not None for owner in ("user", "key", "team")) != 1:
            raise serializers.ValidationError(
                "A budget belongs to exactly one user, one key or one team: give one of them."
            )
        return attrs


def _scoped_filters(request) -> Filters:
    f = filter_bar.parse(request.query_params)
    if not can_view_spend(request.user):  # a developer's reports are about their own usage only
        f = Filters(**{**f.__dict__, "user": request.user.id, "team": None})
    return f


def _jsonable(data: dict) -> dict:
    data = dict(data)
    data["budgets"] = [
        {k: v for k, v in b.items() if k != "budget"} | {"id": b["budget"].id} for b in data["budgets"]
    ]
    return data


@api_view(["GET"])
@permission_classes([IsAuthenticated])
def report_overview(request):
    stack, by = request.query_params.get("stack", "model"), request.query_params.get("by", "")
    if stack not in STACKS or (by and by not in BREAKDOWNS):
        return Response(
            {"detail": f"stack is one of {', '.join(STACKS)}; by is one of {', '.join(BREAKDOWNS)}"},
            status=400,
        )
    f = _scoped_filters(request)
    data = overview_data(f, stack, by)
    if not can_view_spend(request.user):
        data["budgets"] = [
            b
            for b in data["budgets"]
            if b["budget"].user_id == request.user.id
            or (b["budget"].key_id and b["budget"].key.user_id == request.user.id)
        ]
    return Response({"start": f.start, "end": f.end, **_jsonable(data)})


@api_view(["GET"])
@permission_classes([IsAdminUser, CanViewSpend])
def usage_api(request):
    """The spend table by one dimension (`by`, `days`): kept from the first reports API."""
    by = request.query_params.get("by", "user")
    try:
        days = max(1, min(3660, int(request.query_params.get("days", "30"))))
    except ValueError:
        days = 30
    if by not in BREAKDOWNS:
        return Response({"detail": f"unknown dimension {by!r}"}, status=400)
    from datetime import timedelta

    from .reports.queries import now

    moment = now()
    data = overview_data(Filters(start=moment - timedelta(days=days), end=moment), "model", by)
    columns = (
        "requests",
        "errors",
        "fallbacks",
        "retries",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "cost_usd",
    )
    rows = [{"name": r["name"], **{c: r[c] for c in columns}} for r in data["breakdown"]]
    return Response({"by": by, "days": days, "rows": rows, "unpriced": data["unpriced"]})


def _keys_for(user):
    keys = VirtualKey.objects.select_related("user")
    return keys if can_view_spend(user) else keys.filter(user=user)


@api_view(["GET", "POST"])
@permission_classes([IsAuthenticated])
def keys(request):
    if request.method == "GET":
        return Response(KeySerializer(_keys_for(request.user).order_by("-created_at")[:1000], many=True).data)
    from .services import key_issue

    staff = can_view_spend(request.user)
    if not staff and not settings.GATEWAY_SELF_SERVICE_KEYS:
        return Response({"detail": "Self-service keys are off: ask an admin."}, status=403)
    username = request.data.get("user") if staff and request.data.get("user") else request.user.get_username()
    if staff and not get_user_model().objects.filter(username=username).exists():
        return Response({"detail": f"No user named {username!r}."}, status=400)
    key, plaintext = key_issue(username=username, name=str(request.data.get("name", ""))[:100])
    return Response({**KeySerializer(key).data, "key": plaintext}, status=status.HTTP_201_CREATED)


@api_view(["POST"])
@permission_classes([IsAuthenticated])
def revoke_key(request, key_id: int):
    from .services import key_revoke

    if not can_view_spend(request.user) and not settings.GATEWAY_SELF_SERVICE_KEYS:
        return Response({"detail": "Self-service keys are off: ask an admin."}, status=403)
    key = _keys_for(request.user).filter(id=key_id).first()
    if key is None:
        return Response({"detail": "No such key."}, status=404)
    key_revoke(key=str(key.id))
    key.refresh_from_db()
    return Response(KeySerializer(key).data)


@api_view(["GET", "POST"])
@permission_classes([IsAuthenticated])
def budgets(request):
    staff = can_view_spend(request.user)
    if request.method == "GET":
        rows = (
            Budget.objects.all()
            if staff
            else Budget.objects.filter(Q(user=request.user) | Q(key__user=request.user))
        )
        return Response(BudgetSerializer(rows.order_by("id"), many=True).data)
    if not staff:
        return Response({"detail": "Only admins set budgets."}, status=403)
    serializer = BudgetSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    serializer.save()
    return Response(serializer.data, status=status.HTTP_201_CREATED)
