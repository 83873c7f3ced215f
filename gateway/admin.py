from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.functional import cached_property

from routing.admin import RouteAdmin as RoutingRouteAdmin
from routing.models import Route
from routing.stats import RuntimeStats

from .keys import display_prefix, generate_key, hash_key
from .limits import Limits
from .models import Budget, DailyUsage, HourlyUsage, UsageRecord, UserLimits, VirtualKey
from .reports import filters as filter_bar

admin.site.site_header = "Junction"
admin.site.site_title = "Junction"
admin.site.index_title = "Gateway administration"
admin.site.index_template = "admin/junction_index.html"
# The app list is on the index; without the sidebar the usage list and the provider-models
# table fit a 1400 px window without scrolling sideways.
admin.site.enable_nav_sidebar = False


class VirtualKeyForm(forms.ModelForm):
    class Meta:
        model = VirtualKey
        fields = ("name", "user", "allowed_routes", "rpm_limit", "tpm_limit", "require_prices", "expires_at",
                  "revoked_at")
        labels = {"rpm_limit": "RPM limit", "tpm_limit": "TPM limit",
                  "require_prices": "Require known prices"}


@admin.register(VirtualKey)
class VirtualKeyAdmin(admin.ModelAdmin):
    form = VirtualKeyForm
    list_display = ("prefix", "name", "user", "is_active", "expires_at", "revoked_at", "created_at")
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("prefix", "name", "user__username")
    filter_horizontal = ("allowed_routes",)
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        return fields if obj is not None else [f for f in fields if f != "revoked_at"]  # a new key is live

    def save_model(self, request, obj, form, change):
        if not change:
            # The plaintext exists only in this response: shown once, stored as a hash.
            plaintext = generate_key()
            obj.prefix, obj.key_hash = display_prefix(plaintext), hash_key(plaintext)
            request.junction_new_key = plaintext  # rendered by response_add, never stored
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        plaintext = getattr(request, "junction_new_key", None)
        if plaintext is None:
            return super().response_add(request, obj, post_url_continue)
        from django.template.response import TemplateResponse

        from .me import agent_snippets, gateway_url

        return TemplateResponse(request, "admin/gateway/new_key.html", {
            **self.admin_site.each_context(request), "key": obj, "plaintext": plaintext,
            "snippets": agent_snippets(gateway_url(request), plaintext), "title": f"New key for {obj.user}"})

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        from .services import key_revoke

        count = sum(key_revoke(key=str(k.id)) for k in queryset)
        messages.success(request, f"Revoked {count} key(s).")

    @admin.display(boolean=True)
    def is_active(self, obj):
        return obj.is_active


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP rows (a bounded subquery), never the whole table: the
    usage list stays fast at millions of rows; the last pages are reached by filtering."""

    COUNT_CAP = 10_000  # 200 pages of 50

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.COUNT_CAP].count()


class _NamesFromRollups(admin.SimpleListFilter):
    """Choices from the rollups (a few hundred rows), not a DISTINCT over every record."""

    field = ""

    def lookups(self, request, model_admin):
        return [(name, name) for name in filter_bar.distinct_values()[self.field + "s"]]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


class ProviderFilter(_NamesFromRollups):
    title, parameter_name, field = "provider", "provider", "provider"


class RouteFilter(_NamesFromRollups):
    title, parameter_name, field = "route", "route", "route"


class StatusFilter(admin.SimpleListFilter):
    title, parameter_name = "status", "status"

    def lookups(self, request, model_admin):
        return [("ok", "OK (< 400)"), ("error", "errors (≥ 400)"), ("429", "429 rate limited"),
                ("499", "499 client went away"), ("502", "502 upstream error"), ("504", "504 timeout")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "ok":
            return queryset.filter(status__lt=400)
        if value == "error":
            return queryset.filter(status__gte=400)
        return queryset.filter(status=int(value)) if value and value.isdigit() else queryset


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by the gateway, read by people: a view page without add/save/delete."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = ("created", "user", "key_prefix", "provider", "model", "status", "tokens", "cost",
                    "latency")
    list_display_links = ("created",)
    list_select_related = ("user", "key")  # no query per row
    list_filter = (StatusFilter, ProviderFilter, RouteFilter, "price_source", "usage_estimated")
    search_fields = ("=request_id", "=session_id", "=user__username")  # exact: index lookups, no LIKE scans
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 50

    def changelist_view(self, request, extra_context=None):
        from .selectors import unpriced_usage

        unpriced = unpriced_usage(days=30)
        if unpriced["requests"]:
            tokens = f"{unpriced['prompt_tokens']} tokens in, {unpriced['completion_tokens']} out"
            models = ", ".join(unpriced["models"])
            count = f"{unpriced['requests']}{'+' if unpriced['more'] else ''}"
            messages.warning(request, f"{count} request(s) in the last 30 days ({tokens}) had no known "
                                      f"price and are booked at $0: {models}. Set their prices on the "
                                      "provider's models.")
        return super().changelist_view(request, extra_context)

    @admin.display(description="time", ordering="created_at")
    def created(self, obj):
        return timezone.localtime(obj.created_at).strftime("%Y-%m-%d %H:%M:%S")  # one short line

    @admin.display(description="key")
    def key_prefix(self, obj):
        return obj.key.prefix if obj.key else "-"

    @admin.display(description="tokens in/out")
    def tokens(self, obj):
        return f"{obj.prompt_tokens}/{obj.completion_tokens}"

    @admin.display(description="cost (USD)", ordering="cost_usd")
    def cost(self, obj):
        return f"{obj.cost_usd:.6f}"

    @admin.display(description="latency", ordering="latency_ms")
    def latency(self, obj):
        return f"{obj.latency_ms:.0f} ms"


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdmin):
    list_display = ("day", "user", "key", "provider", "model", "status", "requests", "errors", "cost_usd")
    list_select_related = ("user", "key")
    list_filter = (ProviderFilter, RouteFilter)
    paginator = CappedCountPaginator
    show_full_result_count = False


@admin.register(HourlyUsage)
class HourlyUsageAdmin(DailyUsageAdmin):
    list_display = ("hour", "user", "key", "provider", "model", "status", "requests", "errors", "cost_usd")


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ("__str__", "user", "key", "team", "amount_usd", "period", "hard", "spent_now")
    list_filter = ("period", "hard")
    search_fields = ("user__username", "key__prefix", "key__name", "team__name")

    def get_form(self, request, obj=None, **kwargs):
        return super().get_form(request, obj, labels={"amount_usd": "Amount (USD)"}, **kwargs)

    @admin.display(description="spent this period (USD)")
    def spent_now(self, obj):
        import time

        from .limits import build_budgets

        # Read from the database (this admin process has no live ledger of its own).
        for info in build_budgets().get(obj.scope, ()):
            if info.id == obj.id:
                return f"{Limits().spent(info, time.time()):.4f}"
        return "-"


class UserLimitsInline(admin.StackedInline):
    model = UserLimits
    can_delete = False
    fields = ("rpm_limit", "tpm_limit")
    verbose_name_plural = "Rate limits (all of the user's keys)"


User = get_user_model()
_RegisteredUserAdmin = type(admin.site.get_model_admin(User))  # Django's, or a project one
admin.site.unregister(User)


@admin.register(User)
class UserAdmin(_RegisteredUserAdmin):
    """The User admin as registered, plus the user's rate limits."""

    inlines = [*_RegisteredUserAdmin.inlines, UserLimitsInline]


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

    CACHE_DAYS = 7

    def get_list_display(self, request):
        """A response-cache hit-rate column, from the usage rollups: one aggregate per page
        (grouped by route), not a query per row."""
        from datetime import timedelta

        from .reports.queries import Filters, aggregate, now

        moment = now()
        since = moment - timedelta(days=self.CACHE_DAYS)
        rows = aggregate(Filters(since, moment), ("route",), measures=("requests", "cache_hits", "saved_usd"))
        stats = {row["route"]: row for row in rows}

        @admin.display(description=f"cache hits ({self.CACHE_DAYS} d)")
        def cache_hit_rate(obj):
            row = stats.get(obj.name)
            if not row or not row["requests"]:
                return "-"
            share = 100 * row["cache_hits"] / row["requests"]
            return f"{share:.1f}% ({row['cache_hits']}/{row['requests']}), saved ${row['saved_usd']:.2f}"

        display = list(super().get_list_display(request))
        return [*display[:-1], cache_hit_rate, display[-1]]  # before the "test" link

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
