from django.db import models


class Strategy(models.TextChoices):
    PRIORITY = "priority", "Ordered fallback"
    WEIGHTED = "weighted", "Weighted split"
    LATENCY = "latency", "Lowest latency"
    COST = "cost", "Lowest cost"
    LEAST_BUSY = "least_busy", "Least busy"


class HostedTools(models.TextChoices):
    """What to do with a provider-hosted tool (Codex's `web_search` …) the target cannot run as such."""
    MAP = "map", "Map to the target's own equivalent, else drop"
    DROP = "drop", "Drop from the upstream request"
    REFUSE = "refuse", "Refuse the request (400)"


class PromptCacheTTL(models.TextChoices):
    """How long a provider keeps a prompt prefix the gateway marks (Anthropic, Bedrock): a 1-hour write
    costs twice the input price, a 5-minute one 1.25 times; reads cost a tenth either way."""
    FIVE_MINUTES = "5m", "5 minutes"
    ONE_HOUR = "1h", "1 hour"


class Route(models.Model):
    """A client-visible model alias and the ordered targets behind it."""

    name = models.CharField(max_length=200, unique=True, help_text="What clients send as `model`.")
    strategy = models.CharField(max_length=20, choices=Strategy.choices, default=Strategy.PRIORITY)
    description = models.CharField(max_length=300, blank=True)
    enabled = models.BooleanField(default=True)
    session_affinity = models.BooleanField(
        default=True, help_text="Keep an agent session on the target that last answered it while that target is "
                                "healthy (warm prompt cache). Never blocks failover.")
    context_window_fallback = models.BooleanField(
        default=True, help_text="Skip targets whose context window is too small for the prompt, and retry a "
                                "context-length error on a larger-context target.")
    hosted_tools = models.CharField(
        max_length=10, choices=HostedTools.choices, default=HostedTools.MAP,
        help_text="Hosted tools offered by the client (web_search …) on a target of another API: map to the "
                  "target's native tool where one exists, else drop (named in x-gateway-dropped-tools), or "
                  "refuse. A tool_choice that forces a hosted tool the target lacks is always refused.")
    prompt_cache = models.BooleanField(
        default=True, help_text="Place prompt-cache breakpoints (tools, system, the turns already sent) on "
                                "translated requests to Anthropic and Bedrock targets.")
    prompt_cache_passthrough = models.BooleanField(
        default=False, help_text="Also on same-format (passthrough) requests that carry no cache markers of their "
                                 "own. Markers a client set are never moved or dropped.")
    prompt_cache_ttl = models.CharField(max_length=2, choices=PromptCacheTTL.choices,
                                        default=PromptCacheTTL.FIVE_MINUTES)
    response_cache = models.BooleanField(
        default=False, help_text="Answer repeated identical deterministic requests (temperature 0) from the "
                                 "gateway's response cache, scoped per user.")
    response_cache_any_temperature = models.BooleanField(
        default=False, help_text="Also cache requests that are not deterministic (temperature unset or above 0).")
    response_cache_ttl = models.PositiveIntegerField(default=3600, help_text="Seconds a cached answer is served.")
    response_cache_max_entries = models.PositiveIntegerField(
        default=1000, help_text="Size bound per route: the oldest entries are evicted beyond it.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RouteTarget(models.Model):
    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="targets")
    provider = models.ForeignKey("providers.Provider", on_delete=models.CASCADE, related_name="route_targets")
    model = models.CharField(max_length=200, blank=True, help_text="Empty: the provider's default model.")
    weight = models.PositiveIntegerField(default=1)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["route", "order", "id"]

    def __str__(self) -> str:
        return f"{self.route.name} → {self.provider.name}/{self.model or self.provider.default_model}"


class RouteRule(models.Model):
    """Requests to `route` that match `conditions` go to another route, or to one
    provider/model first (the route's own targets stay as fallback). Rules are
    evaluated in order; the first enabled rule that matches and whose target is
    usable (enabled, allowed for the key) applies."""

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="rules")
    order = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    conditions = models.JSONField(
        default=dict, blank=True,
        help_text='All must hold. E.g. {"side_call": true}, {"min_prompt_tokens": 60000}, {"clients": ["goose"], '
                  '"max_tools": 0}. Keys: min_tools, max_tools, min_prompt_tokens, max_prompt_tokens, has_images, '
                  'reasoning_effort [none/low/medium/high], system_pattern, message_pattern (regex), keys (prefixes), '
                  'users, clients [goose/claude-code/codex/opencode/aider/other], side_call, '
                  'max_output_tokens_below. Empty: every request.')
    target_route = models.ForeignKey(Route, on_delete=models.CASCADE, null=True, blank=True,
                                     related_name="rule_sources", help_text="Send matching requests to this route…")
    target_provider = models.ForeignKey("providers.Provider", on_delete=models.CASCADE, null=True, blank=True,
                                        related_name="route_rules", help_text="…or to this provider first.")
    target_model = models.CharField(max_length=200, blank=True,
                                    help_text="With a target provider. Empty: the provider's default model.")

    class Meta:
        ordering = ["route", "order", "id"]

    def __str__(self) -> str:
        return f"{self.route.name}: {self.name}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from .rules import parse_conditions

        errors = {}
        try:
            parse_conditions(self.conditions)
        except ValueError as exc:
            errors["conditions"] = str(exc)
        if bool(self.target_route_id) == bool(self.target_provider_id):
            errors["target_route"] = "Choose either a target route or a target provider (exactly one)."
        elif self.target_route_id and self.route_id and self.target_route_id == self.route_id:
            errors["target_route"] = "A rule cannot send requests to its own route."
        if self.target_model and not self.target_provider_id:
            errors["target_model"] = "A target model needs a target provider."
        if errors:
            raise ValidationError(errors)

    def to_info(self):
        """The snapshot's RuleInfo, or None when the stored conditions are invalid (saved
        around the admin's validation): such a rule is left out rather than matching everything."""
        from .rules import parse_conditions
        from .table import RuleInfo

        try:
            conditions = parse_conditions(self.conditions)
        except ValueError:
            return None
        if self.target_provider_id:
            provider = self.target_provider
            return RuleInfo(self.name, conditions, target_provider=provider.name,
                            target_model=self.target_model or provider.default_model, enabled=self.enabled)
        if self.target_route_id:
            return RuleInfo(self.name, conditions, target_route=self.target_route.name, enabled=self.enabled)
        return None


class ProviderHealth(models.Model):
    class Status(models.TextChoices):
        UNKNOWN = "unknown"
        UP = "up"
        DEGRADED = "degraded"
        DOWN = "down"

    provider = models.OneToOneField("providers.Provider", on_delete=models.CASCADE, related_name="health")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UNKNOWN)
    latency_ms = models.FloatField(null=True, blank=True, help_text="EWMA of probe and traffic latency.")
    error_rate = models.FloatField(default=0.0)
    last_error = models.TextField(blank=True)
    circuit_state = models.CharField(max_length=10, default="closed")
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "provider health"

    def __str__(self) -> str:
        return f"{self.provider.name}: {self.status}"
