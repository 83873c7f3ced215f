"""The config version: every config save announces itself here, so every gateway
process rebuilds its snapshot (gateway.snapshot) before its next request.

A small version file in the data directory is rewritten on each save (atomic
rename, so its inode changes); processes on other hosts learn it through Redis
when REDIS_URL is set (gateway.cluster polls VERSION_KEY once a sync interval).
Here, below routing and the gateway, because config is saved at every layer:
admin, commands, Celery tasks and model discovery.
"""

from __future__ import annotations

import logging
import os
import uuid

from django.conf import settings

log = logging.getLogger("junction.cluster")

VERSION_KEY = "junction:config-version"


def bump_version() -> None:
    path = settings.GATEWAY_CONFIG_VERSION_FILE
    tmp = f"{path}.{os.getpid()}.tmp"
    token = uuid.uuid4().hex
    with open(tmp, "w") as fh:
        fh.write(token)
    os.replace(tmp, path)
    publish_version(token)


def publish_version(token: str) -> None:
    """Called (synchronously) where config is saved: admin, commands, Celery."""
    if not settings.REDIS_URL:
        return
    import redis

    try:
        redis.from_url(settings.REDIS_URL).set(VERSION_KEY, token)
    except redis.RedisError as exc:
        log.warning("could not publish the config version: %s", exc)


def version_file_stamp() -> tuple:
    """What identifies the version file's current content: (inode, mtime) or (None,)."""
    try:
        st = os.stat(settings.GATEWAY_CONFIG_VERSION_FILE)
    except FileNotFoundError:
        return (None,)
    return (st.st_ino, st.st_mtime_ns)
