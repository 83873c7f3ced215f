"""A saved or deleted route rule changes routing: bump the config version so every
gateway process rebuilds its snapshot (gateway.signals does the same for the
other config tables). ProviderHealth is deliberately absent: the health task
bumps the version itself, and only when a provider's status changed."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from providers.config_version import bump_version

from .models import RouteRule


@receiver(post_save, sender=RouteRule)
@receiver(post_delete, sender=RouteRule)
def rule_changed(sender, **kwargs):
    bump_version()
