from celery import shared_task

from providers.config_version import bump_version

from .health import check_providers


@shared_task
def check_provider_health(provider_ids: list[int] | None = None) -> dict[str, str]:
    """Probe every enabled provider (beat: every 30 s) and record ProviderHealth. The config
    version is bumped only when some provider's status changed, so gateway processes
    rebuild their snapshot (and its `health` map) on a change, not every 30 seconds."""
    changes = check_providers(provider_ids)
    if any(old != new for old, new in changes.values()):
        bump_version()
    return {name: new for name, (old, new) in changes.items()}
