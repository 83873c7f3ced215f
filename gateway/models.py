from django.conf import settings
from django.db import models
from django.utils import timezone


class VirtualKey(models.Model):
    """A per-developer key. Only its SHA-256 is stored; the key is shown once."""

    name = models.CharField(max_length=100, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="virtual_keys")
    prefix = models.CharField(max_length=16, editable=False, help_text="First characters, to recognise a key.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    allowed_routes = models.ManyToManyField("routing.Route", blank=True,
                                            help_text="Empty: every route and model.")
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute.")
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens per minute.")
    require_prices = models.BooleanField(
        default=False, help_text="Refuse models with no known price (admin, provider-reported or price "
                                 "database) while a hard budget applies to this key, its user or their team.")
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())


class UserLimits(models.Model):
    """Rate limits of a user: the requests and tokens of all of the user's keys count
    against them, on top of each key's own limits (gateway.limits)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rate_limits")
    rpm_limit = models.PositiveIntegerField("RPM limit", null=True, blank=True,
                                            help_text="Requests per minute over all of the user's keys.")
    tpm_limit = models.PositiveIntegerField("TPM limit", null=True, blank=True,
                                            help_text="Tokens per minute over all of the user's keys.")

    class Meta:
        verbose_name = verbose_name_plural = "rate limits"

    def __str__(self) -> str:
        return f"rate limits of {self.user}"


ONE_OWNER = "A budget belongs to exactly one user, one key or one team: choose one of them."


class Budget(models.Model):
    """A spend limit in USD per period for exactly one of: a user (all their keys), a key,
    or a team (a Django group: all its members' keys)."""

    class Period(models.TextChoices):
        DAILY = "daily"
        WEEKLY = "weekly"
        MONTHLY = "monthly"
        TOTAL = "total"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="budgets")
    key = models.ForeignKey(VirtualKey, null=True, blank=True, on_delete=models.CASCADE, related_name="budgets")
    team = models.ForeignKey("auth.Group", null=True, blank=True, on_delete=models.CASCADE,
                             related_name="budgets",
                             help_text="A Django group: the budget counts every member's spend.")
    amount_usd = models.DecimalField(max_digits=12, decimal_places=4)
    period = models.CharField(max_length=10, choices=Period.choices, default=Period.MONTHLY)
    hard = models.BooleanField(default=True, help_text="Refuse requests once spent; soft budgets only warn "
                                                       "(x-gateway-budget-warning header).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(
            condition=models.Q(user__isnull=False, key__isnull=True, team__isnull=True)
            | models.Q(user__isnull=True, key__isnull=False, team__isnull=True)
            | models.Q(user__isnull=True, key__isnull=True, team__isnull=False),
            name="budget_for_one_user_key_or_team",
            violation_error_message=ONE_OWNER)]

    def __str__(self) -> str:
        owner = self.user or self.key or (f"team {self.team}" if self.team_id else "?")
        return f"${self.amount_usd} {self.period} for {owner}"

    @property
    def scope(self) -> tuple[str, int | None]:
        if self.key_id:
            return "key", self.key_id
        if self.team_id:
            return "team", self.team_id
        return "user", self.user_id



class UsageRecord(models.Model):
    """One row per proxied request, written in batches off the hot path."""

    request_id = models.CharField("request ID", max_length=40, unique=True)
    created_at = models.DateTimeField(db_index=True)
    # No single-column indexes where a (column, created_at) index in Meta serves the same
    # lookups: every index is one more B-tree insert per usage row (gateway.usage).
    key = models.ForeignKey(VirtualKey, null=True, blank=True, on_delete=models.SET_NULL, db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             db_index=False)
    endpoint = models.CharField(max_length=40)
    requested_model = models.CharField(max_length=200, blank=True)
    route = models.CharField(max_length=200, blank=True)
    rule = models.CharField(max_length=100, blank=True, help_text="Routing rule that chose the target.")
    candidates = models.JSONField(default=list, blank=True, help_text="Planned candidate chain.")
    provider = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200, blank=True)
    status = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    stream = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField("cache-read tokens", default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    usage_estimated = models.BooleanField(default=False)
    cost_usd = models.DecimalField("cost (USD)", max_digits=14, decimal_places=8, default=0)
    price_source = models.CharField(
        max_length=10, blank=True, db_index=True,
        choices=[(s, s) for s in ("admin", "provider", "database", "local", "unpriced")],
        help_text="Where cost_usd's price came from; unpriced: no known price, booked as $0 (a warning).")
    latency_ms = models.FloatField("latency (ms)", default=0)
    ttft_ms = models.FloatField("time to first token (ms)", null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    attempt_chain = models.JSONField(default=list, blank=True)
    session_id = models.CharField("session ID", max_length=200, blank=True)
    client_disconnected = models.BooleanField(default=False)
    dropped_tools = models.JSONField(default=list, blank=True,
                                     help_text="Hosted tools left out of the upstream request (route policy).")
    cache_hit = models.BooleanField(default=False, help_text="Answered from the gateway's response cache: "
                                                             "no upstream call, cost 0.")
    saved_usd = models.DecimalField("saved by the response cache (USD)", max_digits=14, decimal_places=8,
                                    default=0, help_text="A cache hit: what the cached answer cost when it was fetched.")
    cache_saved_usd = models.DecimalField(
        "saved by prompt caching (USD)", max_digits=14, decimal_places=8, default=0,
        help_text="Provider-side prompt caching: the input's cost at the uncached input price minus its "
                  "cost with cache reads and writes (negative: cache writes cost more than they saved).")

    class Meta:
        ordering = ["-created_at"]
        # Who may see everyone's spend (reports, usage API): an explicit permission,
        # assignable to a group, not is_staff alone (a provider editor is staff too).
        permissions = [("view_spend", "Can view spend reports and the usage API")]
        # The admin's list filters and the reports' raw tail: each filter with the time order
        # (a route or provider alone would let SQLite's planner scan all of its rows).
        indexes = [models.Index(fields=[name, "created_at"])
                   for name in ("user", "key", "status", "model", "session_id")] + [
            models.Index(fields=[name, "created_at"], name=f"gateway_usage_{name}_time")
            for name in ("route", "provider")]

    def __str__(self) -> str:
        return f"{self.request_id} {self.status}"


class _Measures(models.Model):
    """The measures every rollup table carries (gateway.rollups.MEASURES)."""

    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    fallbacks = models.PositiveIntegerField(default=0, help_text="Served by another target than the first.")
    retries = models.PositiveIntegerField(default=0, help_text="Several attempts on the same target.")
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cached_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    reasoning_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0)
    latency_ms = models.FloatField(default=0, help_text="Sum; divide by requests for the mean.")
    cache_hits = models.PositiveIntegerField(default=0, help_text="Answered from the response cache.")
    saved_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0,
                                    help_text="Saved by response-cache hits.")
    cache_saved_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0,
                                          help_text="Saved by provider-side prompt caching.")

    class Meta:
        abstract = True


class _Target(models.Model):
    route = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200, blank=True)
    status = models.PositiveSmallIntegerField(default=200)

    class Meta:
        abstract = True


class _Rollup(_Target, _Measures):
    """Measures shared by the hourly and daily rollups. One row per bucket × user × key ×
    route × provider × model × status; count_tokens estimates are left out (not requests)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    key = models.ForeignKey(VirtualKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        abstract = True


class HourlyUsage(_Rollup):
    """UsageRecord rolled up per complete hour (gateway.rollups, Celery beat every minute)."""

    hour = models.DateTimeField()

    class Meta:
        ordering = ["-hour"]
        # The user with the time: a user or team filter (user IN …) reads only that range.
        indexes = [models.Index(fields=["hour"]),
                   models.Index(fields=["user", "hour"], name="gateway_hourly_user_hour")]


class DailyUsage(_Rollup):
    """HourlyUsage summed per day (complete days only are read from here)."""

    day = models.DateField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    key = models.ForeignKey(VirtualKey, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-day"]
        indexes = [models.Index(fields=["day", "user"]),
                   models.Index(fields=["user", "day"], name="gateway_daily_user_day")]


class DailyTargetUsage(_Target, _Measures):
    """DailyUsage without user and key: per day × route × provider × model × status (a few
    dozen rows a day). Long-range reports without a user, team or key filter read it."""

    day = models.DateField()

    class Meta:
        indexes = [models.Index(fields=["day"])]


class DailyPeopleUsage(_Measures):
    """DailyUsage without route, provider, model and status: per day × user × key. Long-range
    people tables and budgets without a route, provider, model or status filter read it."""

    day = models.DateField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    key = models.ForeignKey(VirtualKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["day"]),
                   models.Index(fields=["user", "day"], name="gateway_people_user_day")]


class SessionUsage(models.Model):
    """One agent session's totals per day (top sessions without scanning raw rows)."""

    day = models.DateField()
    session_id = models.CharField(max_length=200)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    key = models.ForeignKey(VirtualKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cached_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0)
    cache_hits = models.PositiveIntegerField(default=0)
    saved_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0)
    cache_saved_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["day"]),
                   models.Index(fields=["user", "day"], name="gateway_session_user_day")]


class RollupState(models.Model):
    """Where the rollups stand: hours before `through` are in HourlyUsage (and complete
    days before it in DailyUsage / SessionUsage); reports read raw rows from `through` on."""

    name = models.CharField(max_length=40, unique=True)
    through = models.DateTimeField()


class ResponseCacheEntry(models.Model):
    """One cached answer of the exact response cache (gateway/proxy/response_cache.py), when
    REDIS_URL is unset. `key` hashes the normalised request and its user scope."""

    key = models.CharField(max_length=64, primary_key=True)
    route = models.CharField(max_length=200)
    body = models.BinaryField(help_text="The answer in the client's format (a whole JSON body).")
    meta = models.JSONField(default=dict, help_text="provider, model, usage and cost of the original answer")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["route", "created_at"])]


class StoredResponse(models.Model):
    """A stored Responses API answer (`store`, `previous_response_id`), when REDIS_URL is unset
    (gateway/proxy/conversations.py): shared by every worker, expired rows deleted by a beat task
    (gateway.retention). Only its owner's keys may read it."""

    id = models.CharField(max_length=200, primary_key=True, help_text="The response id the client saw.")
    user_id = models.PositiveIntegerField(help_text="Owner: any key of this user may continue it.")
    key_id = models.PositiveIntegerField(null=True, help_text="The key that created it.")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    payload = models.TextField(help_text="JSON: the input answered and the response (orjson, read as text).")
