"""Any admin save of configuration bumps the config version, so every gateway
process rebuilds its in-memory snapshot before serving its next request."""

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from providers.models import Provider, ProviderModel
from routing.models import Route, RouteTarget

from .models import Budget, UserLimits, VirtualKey
from providers.config_version import bump_version

CONFIG_MODELS = (Provider, ProviderModel, Route, RouteTarget, VirtualKey, Budget, UserLimits)


@receiver(post_save)
@receiver(post_delete)
def config_changed(sender, **kwargs):
    if sender in CONFIG_MODELS:
        bump_version()


@receiver(m2m_changed, sender=VirtualKey.allowed_routes.through)
def key_routes_changed(sender, **kwargs):
    bump_version()


@receiver(m2m_changed, sender=get_user_model().groups.through)
def team_members_changed(sender, **kwargs):
    bump_version()  # keys carry their user's teams (team budgets)
