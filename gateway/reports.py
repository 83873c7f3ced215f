"""Spend reports: /reports/ (HTML, staff login) with CSV export, and the same data
as JSON at /api/usage/ (DRF). Both show everyone's spend, so both need the explicit
`gateway.view_spend` permission (a group can carry it), not staff status alone."""

from __future__ import annotations

import csv

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.response import Response

from .selectors import REPORT_DIMENSIONS, unpriced_usage, usage_report

VIEW_SPEND = "gateway.view_spend"


class CanViewSpend(BasePermission):
    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.has_perm(VIEW_SPEND))


COLUMNS = ("name", "requests", "errors", "fallbacks", "prompt_tokens", "completion_tokens", "cached_tokens",
           "cost_usd")


def _params(request) -> tuple[str, int]:
    by = request.GET.get("by", "user")
    try:
        days = max(1, min(3660, int(request.GET.get("days", "30"))))
    except ValueError:
        days = 30
    return by, days


@staff_member_required
@permission_required(VIEW_SPEND, raise_exception=True)
def spend_report(request):
    by, days = _params(request)
    if by not in REPORT_DIMENSIONS:
        return HttpResponseBadRequest(f"unknown dimension {by!r}")
    rows = usage_report(by=by, days=days)
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="junction-spend-by-{by}-{days}d.csv"'
        writer = csv.writer(response)
        writer.writerow((by,) + COLUMNS[1:])
        for row in rows:
            writer.writerow([row[c] for c in COLUMNS])
        return response
    peak = max((r["cost_usd"] for r in rows), default=0) or 1
    for row in rows:
        row["bar"] = round(100 * row["cost_usd"] / peak, 1)  # width of the inline bar chart
    total = {c: sum(r[c] for r in rows) for c in COLUMNS[1:]}
    return render(request, "reports/spend.html", {"rows": rows, "by": by, "days": days, "total": total,
                                                   "dimensions": list(REPORT_DIMENSIONS),
                                                   "unpriced": unpriced_usage(days=days)})


@api_view(["GET"])
@permission_classes([IsAdminUser, CanViewSpend])
def usage_api(request):
    by, days = _params(request)
    if by not in REPORT_DIMENSIONS:
        return Response({"detail": f"unknown dimension {by!r}"}, status=400)
    return Response({"by": by, "days": days, "rows": usage_report(by=by, days=days),
                     "unpriced": unpriced_usage(days=days)})
