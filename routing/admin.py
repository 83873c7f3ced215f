from django.contrib import admin

from .models import ProviderHealth, Route, RouteTarget


class RouteTargetInline(admin.TabularInline):
    model = RouteTarget
    extra = 1


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ("name", "strategy", "chain", "enabled")
    list_filter = ("strategy", "enabled")
    search_fields = ("name", "description")
    inlines = [RouteTargetInline]

    @admin.display(description="targets")
    def chain(self, obj):
        return " → ".join(f"{t.provider.name}/{t.model or t.provider.default_model}"
                          for t in obj.targets.select_related("provider"))


@admin.register(ProviderHealth)
class ProviderHealthAdmin(admin.ModelAdmin):
    list_display = ("provider", "status", "latency_ms", "error_rate", "circuit_state", "checked_at")
    list_filter = ("status", "circuit_state")
    readonly_fields = [f.name for f in ProviderHealth._meta.fields]
