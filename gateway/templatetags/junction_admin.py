"""The admin index dashboard: spend today and this month, the last hour's traffic,
provider health, budgets near their limit (rollups + a few indexed queries)."""

from __future__ import annotations

from datetime import timedelta

from django import template
from django.db.models import Count, Q

from gateway.models import UsageRecord
from gateway.reports.queries import Filters, budget_burn, now, totals

register = template.Library()


@register.simple_tag
def junction_dashboard() -> dict:
    from routing.models import ProviderHealth

    moment = now()
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    hour = (
        UsageRecord.objects.filter(created_at__gte=moment - timedelta(hours=1))
        .exclude(provider="junction", model="o200k-estimate")
        .aggregate(requests=Count("id"), errors=Count("id", filter=Q(status__gte=400)))
    )
    return {
        "today": totals(Filters(start=midnight, end=moment))["cost_usd"],
        "month": totals(Filters(start=midnight.replace(day=1), end=moment))["cost_usd"],
        "hour": hour,
        "error_rate": 100 * hour["errors"] / hour["requests"] if hour["requests"] else 0,
        "health": list(ProviderHealth.objects.select_related("provider").order_by("provider__name")),
        "budgets": [b for b in budget_burn(moment) if b["percent"] >= 80][:10],
    }
