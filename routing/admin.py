from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from .models import ProviderHealth, Route, RouteRule, RouteTarget


class RouteTargetInline(admin.TabularInline):
    model = RouteTarget
    extra = 1


class RouteRuleInline(admin.StackedInline):
    model = RouteRule
    extra = 0
    fk_name = "route"
    fields = (("order", "name", "enabled"), "conditions", ("target_route", "target_provider", "target_model"))

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "conditions":
            field.widget.attrs.update(rows=3, cols=100, style="font-family: monospace")
        return field


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ("name", "strategy", "chain", "rule_count", "session_affinity", "enabled", "tester")
    list_filter = ("strategy", "enabled")
    search_fields = ("name", "description")
    fields = ("name", "strategy", "description", "enabled", "session_affinity", "context_window_fallback",
              "hosted_tools", "prompt_cache", "prompt_cache_passthrough", "prompt_cache_ttl",
              "response_cache", "response_cache_any_temperature", "response_cache_ttl",
              "response_cache_max_entries")
    inlines = [RouteTargetInline, RouteRuleInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("targets__provider", "rules")

    @admin.display(description="targets")
    def chain(self, obj):
        return " → ".join(f"{t.provider.name}/{t.model or t.provider.default_model}"
                          for t in obj.targets.all())

    @admin.display(description="rules")
    def rule_count(self, obj):
        return len(obj.rules.all())

    @admin.display(description="")
    def tester(self, obj):  # the page itself is the gateway's (gateway.admin: it needs the live stats)
        url = reverse("admin:routing_route_tester") + f"?model={obj.name}"
        return format_html('<a href="{}">test</a>', url)


@admin.register(ProviderHealth)
class ProviderHealthAdmin(admin.ModelAdmin):
    list_display = ("provider", "status_badge", "latency", "errors", "circuit_state", "checked",
                    "short_error")
    list_filter = ("status", "circuit_state")
    search_fields = ("provider__name", "last_error")
    list_select_related = ("provider",)
    ordering = ("provider__name",)
    readonly_fields = [f.name for f in ProviderHealth._meta.fields]

    COLORS = {"up": "#2e7d32", "degraded": "#ed6c02", "down": "#c62828", "unknown": "#757575"}

    def has_add_permission(self, request):
        return False  # rows are written by the health check task

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return format_html('<span style="color:#fff;background:{};padding:2px 8px;border-radius:8px;'
                           'font-weight:bold">{}</span>', self.COLORS.get(obj.status, "#757575"), obj.status)

    @admin.display(description="latency", ordering="latency_ms")
    def latency(self, obj):
        return "—" if obj.latency_ms is None else f"{obj.latency_ms:.0f} ms"

    @admin.display(description="error rate", ordering="error_rate")
    def errors(self, obj):
        return f"{obj.error_rate * 100:.0f}%"

    @admin.display(description="checked", ordering="checked_at")
    def checked(self, obj):
        if obj.checked_at is None:
            return "never"
        seconds = int((timezone.now() - obj.checked_at).total_seconds())
        return f"{seconds}s ago" if seconds < 120 else f"{seconds // 60} min ago"

    @admin.display(description="last error")
    def short_error(self, obj):
        return obj.last_error[:80] + ("…" if len(obj.last_error) > 80 else "")

