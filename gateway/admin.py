from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import path

from routing.admin import RouteAdmin as RoutingRouteAdmin
from routing.models import Route
from routing.stats import RuntimeStats

from .keys import display_prefix, generate_key, hash_key
from .limits import Limits
from .models import Budget, DailyUsage, UsageRecord, VirtualKey


class VirtualKeyForm(forms.ModelForm):
    class Meta:
        model = VirtualKey
        fields = ("name", "user", "allowed_routes", "rpm_limit", "tpm_limit", "require_prices", "expires_at",
                  "revoked_at")


@admin.register(VirtualKey)
class VirtualKeyAdmin(admin.ModelAdmin):
    form = VirtualKeyForm
    list_display = ("prefix", "name", "user", "is_active", "expires_at", "revoked_at", "created_at")
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("prefix", "name", "user__username")
    filter_horizontal = ("allowed_routes",)
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if not change:
            # The plaintext exists only in this response: shown once, stored as a hash.
            plaintext = generate_key()
            obj.prefix, obj.key_hash = display_prefix(plaintext), hash_key(plaintext)
            messages.warning(request, f"New key for {obj.user} (shown once, copy it now): {plaintext}")
        super().save_model(request, obj, form, change)

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        from .services import key_revoke

        count = sum(key_revoke(key=str(k.id)) for k in queryset)
        messages.success(request, f"Revoked {count} key(s).")

    @admin.display(boolean=True)
    def is_active(self, obj):
        return obj.is_active


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "endpoint", "requested_model", "provider", "model", "status",
                    "prompt_tokens", "completion_tokens", "cost_usd", "price_source", "usage_estimated",
                    "latency_ms", "attempts", "stream")
    list_filter = ("status", "provider", "route", "stream", "endpoint", "usage_estimated", "price_source")

    def changelist_view(self, request, extra_context=None):
        from .selectors import unpriced_usage

        unpriced = unpriced_usage(days=30)
        if unpriced["requests"]:
            tokens = f"{unpriced['prompt_tokens']} tokens in, {unpriced['completion_tokens']} out"
            models = ", ".join(unpriced["models"])
            count = unpriced["requests"]
            messages.warning(request, f"{count} request(s) in the last 30 days ({tokens}) had no known "
                                      f"price and are booked at $0: {models}. Set their prices on the "
                                      "provider's models.")
        return super().changelist_view(request, extra_context)
    search_fields = ("request_id", "requested_model", "model", "session_id", "user__username")
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in UsageRecord._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(DailyUsage)
class DailyUsageAdmin(admin.ModelAdmin):
    list_display = ("day", "user", "key", "route", "provider", "model", "requests", "errors", "prompt_tokens",
                    "completion_tokens", "cost_usd")
    list_filter = ("day", "provider", "route")


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ("__str__", "user", "key", "team", "amount_usd", "period", "hard", "spent_now")
    list_filter = ("period", "hard")
    search_fields = ("user__username", "key__prefix", "key__name", "team__name")

    @admin.display(description="spent this period (USD)")
    def spent_now(self, obj):
        import time

        from .limits import build_budgets

        # Read from the database (this admin process has no live ledger of its own).
        for info in build_budgets().get(obj.scope, ()):
            if info.id == obj.id:
                return f"{Limits().spent(info, time.time()):.4f}"
        return "-"


admin.site.unregister(Route)


@admin.register(Route)
class RouteAdmin(RoutingRouteAdmin):
    """Routing's Route admin plus the route tester page, which needs the gateway's
    snapshot builder and live stats (routing sits below the gateway)."""

    actions = ["purge_response_cache"]

    @admin.action(description="Purge the response cache of the selected routes")
    def purge_response_cache(self, request, queryset):
        from .proxy.response_cache import purge_routes

        count = purge_routes([r.name for r in queryset])
        self.message_user(request, f"{count} cached answer(s) purged.")

    def get_urls(self):
        return [path("tester/", self.admin_site.admin_view(self.tester_view), name="routing_route_tester")] \
            + super().get_urls()

    def tester_view(self, request):
        """Paste a request, see the route, rule, strategy and candidate chain. Calls no provider."""
        from .tester import TesterForm, run_tester

        result = None
        if request.method == "POST":
            form = TesterForm(request.POST)
            if form.is_valid():
                result = run_tester(_live_stats(request), **form.cleaned_data)
        else:
            form = TesterForm(initial={"model": request.GET.get("model", ""), "format": "openai_chat"})
        context = {**self.admin_site.each_context(request), "title": "Route tester", "form": form,
                   "result": result, "opts": self.model._meta}
        return TemplateResponse(request, "admin/routing/route_tester.html", context)


def _live_stats(request) -> RuntimeStats:
    """The serving gateway's stats (gateway.asgi puts the gateway in the ASGI scope's
    state); empty ones where no gateway serves this request (WSGI, tests)."""
    gw = getattr(request, "scope", {}).get("state", {}).get("gateway")
    return gw.stats if gw is not None else RuntimeStats()
