"""Virtual keys never reach a log: `/k/<key>` path prefixes and any `jk-…` token are
cut to the key's display prefix (the one the admin shows) in every log record of the
process (Django's, Daphne's, Celery's, ours), and in Daphne's access log
(gateway/daphne_main.py). Installed as the log record factory, so it holds whatever
handlers and filters a library sets up; records below their logger's level are never
created, so it costs nothing for what is not logged."""

from __future__ import annotations

import logging
import re

_PATH_KEY = re.compile(r"/k/([^/\s\"'?#]+)")
_KEY = re.compile(r"jk-[A-Za-z0-9_\-]{8,}")
KEEP = 10  # gateway.keys.display_prefix


def _mask(token: str) -> str:
    if token.endswith("…") or token == "[redacted]":
        return token  # already masked (the factory and the filter may both run)
    if token.startswith("jk-"):
        # A real key keeps its display prefix; a short token would be shown whole.
        return token[:KEEP] + "…" if len(token) > 2 * KEEP else "jk-…"
    return "[redacted]"


def redact(text: str) -> str:
    if "jk-" not in text and "/k/" not in text:
        return text
    text = _PATH_KEY.sub(lambda m: "/k/" + _mask(m.group(1)), text)
    return _KEY.sub(lambda m: _mask(m.group(0)), text)


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: leave it to the handler to report
        return record
    clean = redact(message)
    if clean is not message and clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    return record


class RedactSecrets(logging.Filter):
    """The same as a filter, for handlers configured outside this process's factory."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def install() -> None:
    factory = logging.getLogRecordFactory()
    if getattr(factory, "junction_redacts", False):
        return

    def make_record(*args, **kwargs):
        return redact_record(factory(*args, **kwargs))

    make_record.junction_redacts = True
    logging.setLogRecordFactory(make_record)


def open_private(path: str, mode: str = "a"):
    """A log file only its owner can read (created 0600, tightened if it exists)."""
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode, 1)
