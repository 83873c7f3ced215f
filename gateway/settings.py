"""Junction settings. Everything comes from the environment (django-environ);
the defaults are the embedded profile: SQLite in WAL mode, no Redis, a Celery
broker on the filesystem, local-memory cache, bound to 127.0.0.1."""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

DATA_DIR = Path(env.str("GATEWAY_DATA_DIR", default=str(BASE_DIR / "data")))
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """Use SECRET_KEY from the environment, else a random one kept in the data dir
    (so sessions and encrypted secrets survive restarts on the embedded profile)."""
    value = env.str("SECRET_KEY", default="")
    if value:
        return value
    path = DATA_DIR / "secret_key"
    if not path.exists():
        import secrets

        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Former SECRET_KEYs: sessions signed and provider secrets encrypted with them stay valid
# (providers/crypto.py) until `manage.py rotate_secrets` re-encrypts with the current one.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "channels",
    "gateway",
    "providers",
    "routing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gateway.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ASGI_APPLICATION = "gateway.asgi.application"
WSGI_APPLICATION = None

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'junction.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the usage writer, Celery and admin work side by side; IMMEDIATE avoids
    # "database is locked" upgrades when two writers meet.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
        "transaction_mode": "IMMEDIATE",
    }
DATABASES["default"]["CONN_MAX_AGE"] = 0  # async views: no persistent connections without a pool
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                  "CONFIG": {"hosts": [REDIS_URL]}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
LOGIN_URL = "/login/"  # every user (the admin's login takes staff only)
LOGIN_REDIRECT_URL = "/me/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
}

# --- Celery (Saleor-style: settings namespace, beat schedule here)
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    for sub in ("broker/in", "broker/processed", "broker/control"):
        (DATA_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(DATA_DIR / "broker/in"),
        "data_folder_out": str(DATA_DIR / "broker/in"),
        "processed_folder": str(DATA_DIR / "broker/processed"),
        "store_processed": False,
        "control_folder": str(DATA_DIR / "broker/control"),  # kombu's default is ./control
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_IMPORTS = ("gateway.retention",)
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "usage-rollup": {"task": "gateway.tasks.rollup_usage", "schedule": 60.0},
    "provider-health": {"task": "routing.tasks.check_provider_health", "schedule": 30.0},
    "usage-retention": {"task": "gateway.retention.delete_old_usage", "schedule": 3600.0},
    "stored-responses-expiry": {"task": "gateway.retention.delete_expired_stored_responses",
                                "schedule": 600.0},
}

# --- Gateway
GATEWAY_HOST = env.str("GATEWAY_HOST", default="127.0.0.1")
GATEWAY_PORT = env.int("GATEWAY_PORT", default=3000)
GATEWAY_ALLOW_ANONYMOUS = env.bool("GATEWAY_ALLOW_ANONYMOUS", default=False)
GATEWAY_MAX_BODY_BYTES = env.int("GATEWAY_MAX_BODY_BYTES", default=32 * 1024 * 1024)
# Request line plus headers (gateway/server_tuning.py): a 431 in the client's format beyond it.
GATEWAY_MAX_HEADER_BYTES = env.int("GATEWAY_MAX_HEADER_BYTES", default=32 * 1024)
# From a request's first line to its last body byte: a 408 beyond it (slow or stalled clients).
GATEWAY_BODY_TIMEOUT = env.float("GATEWAY_BODY_TIMEOUT", default=60.0)
# Retry rounds over an exhausted candidate chain (each target is tried once per round),
# bounded by a deadline from the request's start; waits honour retry-after up to a cap.
GATEWAY_RETRIES = env.int("GATEWAY_RETRIES", default=1)
GATEWAY_RETRY_DEADLINE = env.float("GATEWAY_RETRY_DEADLINE", default=30.0)
GATEWAY_RETRY_MAX_WAIT = env.float("GATEWAY_RETRY_MAX_WAIT", default=8.0)
GATEWAY_BUDGET_REFRESH_SECONDS = env.float("GATEWAY_BUDGET_REFRESH_SECONDS", default=1.0)
GATEWAY_METRICS_TOKEN = env.str("GATEWAY_METRICS_TOKEN", default="")
# Without a token /metrics answers loopback clients only; true serves it to anyone.
GATEWAY_METRICS_PUBLIC = env.bool("GATEWAY_METRICS_PUBLIC", default=False)
# Set by `manage.py serve` for its workers: with more than one and no REDIS_URL they share
# RPM/TPM windows (gateway.host_windows) and circuit breakers (gateway.host_circuits) through
# files in the data dir.
GATEWAY_WORKERS = env.int("GATEWAY_WORKERS", default=1)
GATEWAY_CLUSTER_SYNC_SECONDS = env.float("GATEWAY_CLUSTER_SYNC_SECONDS", default=1.0)
GATEWAY_USAGE_FLUSH_SECONDS = env.float("GATEWAY_USAGE_FLUSH_SECONDS", default=0.5)
# The usage writer thread's CPU priority (README, Tail latency): "normal", at
# GATEWAY_USAGE_WRITER_NICE (0: as the serving thread), or "idle" (Linux SCHED_IDLE: it runs
# when nothing else wants the core). Idle is opt-in: it shortens the tail of a single worker
# with a core of its own, but a writer descheduled while it holds the GIL stalls the serving
# thread for hundreds of ms whenever other processes keep the cores busy (N workers, a build).
GATEWAY_USAGE_WRITER_PRIORITY = env.str("GATEWAY_USAGE_WRITER_PRIORITY", default="normal")
if GATEWAY_USAGE_WRITER_PRIORITY not in ("idle", "normal"):
    raise ImproperlyConfigured("GATEWAY_USAGE_WRITER_PRIORITY must be idle or normal, "
                               f"not {GATEWAY_USAGE_WRITER_PRIORITY!r}")
GATEWAY_USAGE_WRITER_NICE = env.int("GATEWAY_USAGE_WRITER_NICE", default=0)
# Longest a record may wait for the database because the writer gets no CPU (a saturated
# core starves an idle-priority writer): beyond it the serving thread gives it the core,
# 20 ms in every 100, until it has caught up.
GATEWAY_USAGE_MAX_LAG_SECONDS = env.float("GATEWAY_USAGE_MAX_LAG_SECONDS", default=5.0)
# Usage records held in memory for the writer; beyond this they are read back from the journal.
GATEWAY_USAGE_QUEUE_MAX = env.int("GATEWAY_USAGE_QUEUE_MAX", default=50_000)
# Output tokens reserved against a budget for a request that sets no max_tokens.
GATEWAY_RESERVE_DEFAULT_OUTPUT_TOKENS = env.int("GATEWAY_RESERVE_DEFAULT_OUTPUT_TOKENS", default=4096)
# A reservation a crashed process never released stops counting after this long (Redis).
GATEWAY_RESERVE_TTL_SECONDS = env.float("GATEWAY_RESERVE_TTL_SECONDS", default=3600.0)
# Encryption keys for provider secrets (Fernet, comma-separated; first encrypts,
# all decrypt, for rotation). Empty: derived from SECRET_KEY.
GATEWAY_ENCRYPTION_KEYS = env.list("GATEWAY_ENCRYPTION_KEYS", default=[])
GATEWAY_CONFIG_VERSION_FILE = DATA_DIR / "config.version"
# Developers may issue and revoke their own keys on /me/ and the API (else only admins).
GATEWAY_SELF_SERVICE_KEYS = env.bool("GATEWAY_SELF_SERVICE_KEYS", default=False)
# The address agents use, for the setup snippets (empty: the address the page was loaded from).
GATEWAY_PUBLIC_URL = env.str("GATEWAY_PUBLIC_URL", default="")
# SIGTERM: how long requests and streams in flight may run on before they are ended
# (gateway.daphne_main). `serve` waits this long plus a margin for its workers.
GATEWAY_DRAIN_SECONDS = env.float("GATEWAY_DRAIN_SECONDS", default=30.0)
# Access log on stderr, one line per request (gateway.access_log): json | text | none.
GATEWAY_LOG_FORMAT = env.str("GATEWAY_LOG_FORMAT", default="none")
# UsageRecord rows older than this many days (and covered by the DailyUsage rollup) are
# deleted by a beat task (gateway.retention); 0 keeps them for ever.
GATEWAY_USAGE_RETENTION_DAYS = env.int("GATEWAY_USAGE_RETENTION_DAYS", default=0)
# The response cache's in-process tier in front of the database backend (gateway.proxy.response_cache):
# its size in bytes (0: off) and how long a process may serve an entry without asking the database.
GATEWAY_RESPONSE_CACHE_LOCAL_BYTES = env.int("GATEWAY_RESPONSE_CACHE_LOCAL_BYTES", default=32 * 1024 * 1024)
GATEWAY_RESPONSE_CACHE_LOCAL_TTL = env.float("GATEWAY_RESPONSE_CACHE_LOCAL_TTL", default=10.0)

from gateway import log_redaction  # noqa: E402

log_redaction.install()  # no virtual key in any log record of this process
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "gateway.log_redaction.RedactSecrets"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
    "loggers": {
        # httpx logs every request at INFO: too costly on the hot path, and URLs can carry keys.
        "httpx": {"level": "WARNING"},
        "junction": {"level": env.str("LOG_LEVEL", default="INFO")},
    },
}
