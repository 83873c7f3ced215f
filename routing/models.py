from django.db import models


class Strategy(models.TextChoices):
    PRIORITY = "priority", "Ordered fallback"
    WEIGHTED = "weighted", "Weighted split"
    LATENCY = "latency", "Lowest latency"
    COST = "cost", "Lowest cost"
    LEAST_BUSY = "least_busy", "Least busy"


class Route(models.Model):
    """A client-visible model alias and the ordered targets behind it."""

    name = models.CharField(max_length=200, unique=True, help_text="What clients send as `model`.")
    strategy = models.CharField(max_length=20, choices=Strategy.choices, default=Strategy.PRIORITY)
    description = models.CharField(max_length=300, blank=True)
    enabled = models.BooleanField(default=True)

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
