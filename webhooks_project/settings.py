"""Settings, read from the environment only, with production-safe defaults (SQLite aside).
Every variable is described in docs/configuration.md."""

import sys
from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from transactions.signatures import is_valid_secret  # no Django imports in it

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# --- Core -------------------------------------------------------------------------

DEBUG = env.bool("DJANGO_DEBUG", default=False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off "
            "(`make run` writes one into .env and runs the service with it)."
        )
    SECRET_KEY = "insecure-development-only-key"  # noqa: S105 (DEBUG only)

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    # Before django_q, so that our `qcluster` command (graceful shutdown) wins.
    "transactions",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "django_q",
    "django_prometheus",
]

# One chain for every request, webhooks included. What may refuse a request (plain http, a
# foreign Host) comes before WhiteNoise, so static files are refused to a foreign Host too.
MIDDLEWARE = [
    # First, so that everything after it sees the client's address (TRUSTED_PROXIES).
    "transactions.middleware.TrustedProxyMiddleware",
    # transactions.fastpath.*: the same middleware, but webhook deliveries pass it by.
    "transactions.fastpath.PrometheusBeforeMiddleware",
    "transactions.middleware.RequestIDMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "transactions.fastpath.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "transactions.fastpath.AuthenticationMiddleware",
    "transactions.fastpath.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "transactions.fastpath.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "webhooks_project.urls"
WSGI_APPLICATION = "webhooks_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ADMIN_URL = env.str("DJANGO_ADMIN_URL", default="admin/").strip("/") + "/"

# --- Database ---------------------------------------------------------------------


def _served_by_greenlets() -> bool:
    """True in a process gevent has monkeypatched (gunicorn's gevent worker)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")


DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
_db = DATABASES["default"]
DATABASE_POOL_SIZE = env.int("DATABASE_POOL_SIZE", default=16)
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
if _db["ENGINE"] == "django.db.backends.postgresql":
    # Fail fast (a 503 the sender retries) rather than hang: on an unreachable database, a
    # silent peer (TCP timeout, keepalives) or another session's lock. The URL's own options win.
    _db["OPTIONS"] = {
        "connect_timeout": env.int("DATABASE_CONNECT_TIMEOUT", default=3),
        "tcp_user_timeout": env.int("DATABASE_TCP_USER_TIMEOUT_MS", default=5000),
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "options": f"-c lock_timeout={env.int('DATABASE_LOCK_TIMEOUT_MS', default=5000)}",
        **_db.get("OPTIONS", {}),
    }
    _db["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    # Django keeps a connection per greenlet, so a gevent web worker shares a pool instead of
    # opening one per client. Forking processes (qcluster) keep one connection: a pool does
    # not survive a fork.
    if _served_by_greenlets():
        _db["OPTIONS"]["pool"] = {
            "min_size": min(4, DATABASE_POOL_SIZE),
            "max_size": DATABASE_POOL_SIZE,
            "timeout": _db["OPTIONS"]["connect_timeout"],
            # Gives up retrying after 5 s and starts afresh on the next request, so the web
            # reconnects within seconds of the database's return, however long it was away.
            "reconnect_timeout": 5,
        }
        _db["CONN_MAX_AGE"] = 0  # the pool keeps the connections
    # Off: a second round trip per webhook (~15% of its CPU); services._upsert retries a
    # webhook that meets a dropped connection instead.
    _db["CONN_HEALTH_CHECKS"] = env.bool("DATABASE_CONN_HEALTH_CHECKS", default=False)
    # Only the webhook's INSERT asks to be prepared (transactions/fastpath.py).
    if DATABASE_PREPARED_STATEMENTS:
        _db["OPTIONS"].setdefault("prepare_threshold", 5)
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    # Web and workers write at once: WAL lets readers go on, IMMEDIATE and a busy timeout
    # make writers queue instead of failing.
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file, not memory, so that end-to-end tests' server processes share it.
    _db.setdefault("TEST", {}).setdefault("NAME", str(BASE_DIR / "test_db.sqlite3"))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth, i18n, static files -----------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # DEBUG runs need no `collectstatic`; production serves its compressed, hashed files.
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        ),
    },
}

# --- HTTP API ---------------------------------------------------------------------

# Bodies larger than this are refused before they are read.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("WEBHOOK_MAX_BODY_BYTES", default=64 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["transactions.parsers.StrictJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "transactions.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "transactions.openapi.TaggedAutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Webhook processing service",
    "DESCRIPTION": (
        "Receives payment transactions by webhook, stores each once, and processes it "
        "in the background. Errors share one shape: "
        '`{"error": code, "message": text, "fields": {field: [messages]}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "TransactionStatusEnum": "transactions.models.Status",
        "HealthStatusEnum": ["HEALTHY", "UNHEALTHY"],
    },
}

RETRY_AFTER_SECONDS = env.int("RETRY_AFTER_SECONDS", default=5)

# --- Security (docs/security.md) ---------------------------------------------------

WEBHOOK_SECRETS = env.list("WEBHOOK_SECRETS", default=[])
for _secret in WEBHOOK_SECRETS:
    if not is_valid_secret(_secret):
        raise ImproperlyConfigured(
            "WEBHOOK_SECRETS must hold whsec_<base64 of 24+ random bytes> secrets, comma-separated "
            "(`python manage.py send_webhook --new-secret` makes one)."
        )
WEBHOOK_TOLERANCE_SECONDS = env.int("WEBHOOK_TOLERANCE_SECONDS", default=5 * 60)
STATUS_API_PUBLIC = env.bool("STATUS_API_PUBLIC", default=False)

HTTPS = env.bool("DJANGO_HTTPS", default=True)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^$"]  # load balancers probe the health check over http
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=365 * 24 * 3600 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=True)
_proxy_ssl_header = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="X-Forwarded-Proto")
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https") if _proxy_ssl_header else None
)

# Empty: X-Forwarded-For is ignored (transactions/middleware.py).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
for _proxy in TRUSTED_PROXIES:
    try:
        ip_network(_proxy, strict=False)
    except ValueError as error:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {error}") from error

# Admin logins: a username-and-address pair is locked out after too many failures.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("ADMIN_LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# The address after TRUSTED_PROXIES, never a header a client can rotate.
AXES_CLIENT_IP_CALLABLE = "transactions.middleware.client_address"
AXES_RESET_ON_SUCCESS = True
AXES_ONLY_ADMIN_SITE = True  # API requests never authenticate with passwords

# --- Processing -------------------------------------------------------------------
# Timeout and lease derive from the (simulated) call's delay, so they stay consistent.

PROCESSING_DELAY_SECONDS = env.float("PROCESSING_DELAY_SECONDS", default=30.0)
PROCESSING_FAILURE_RATE = env.float("PROCESSING_FAILURE_RATE", default=0.0)
PROCESSING_CALL_TIMEOUT_SECONDS = env.float(
    "PROCESSING_CALL_TIMEOUT_SECONDS", default=PROCESSING_DELAY_SECONDS + 15
)
# The lease must outlast the call timeout, so that a live worker's call is never duplicated.
PROCESSING_LEASE_SECONDS = env.float("PROCESSING_LEASE_SECONDS", default=PROCESSING_CALL_TIMEOUT_SECONDS + 15)
if PROCESSING_LEASE_SECONDS <= PROCESSING_CALL_TIMEOUT_SECONDS:
    raise ImproperlyConfigured("PROCESSING_LEASE_SECONDS must exceed PROCESSING_CALL_TIMEOUT_SECONDS.")
PAYMENT_API_URL = env.str("PAYMENT_API_URL", default="")  # unset: the simulated call
# Caps for the whole cluster (every qcluster on every host); 0: no cap.
PAYMENT_API_MAX_CONCURRENCY = env.int("PAYMENT_API_MAX_CONCURRENCY", default=0)
PAYMENT_API_MAX_RATE = env.float("PAYMENT_API_MAX_RATE", default=0.0)
if PAYMENT_API_MAX_CONCURRENCY < 0 or PAYMENT_API_MAX_RATE < 0:
    raise ImproperlyConfigured(
        "PAYMENT_API_MAX_CONCURRENCY and PAYMENT_API_MAX_RATE must be 0 (no cap) or more."
    )
# Calls in flight per worker process: a call is a wait, so this bounds memory, not speed
# (docs/performance.md: the capacity model).
PROCESSING_CONCURRENCY = env.int("PROCESSING_CONCURRENCY", default=10_000)
PROCESSING_MAX_ATTEMPTS = env.int("PROCESSING_MAX_ATTEMPTS", default=5)
PROCESSING_RETRY_BACKOFF_SECONDS = env.float("PROCESSING_RETRY_BACKOFF_SECONDS", default=2.0)
PROCESSING_POLL_SECONDS = env.float("PROCESSING_POLL_SECONDS", default=0.5)
PROCESSING_IDLE_SECONDS = env.float("PROCESSING_IDLE_SECONDS", default=5.0)
PROCESSING_CLAIM_WINDOW_SECONDS = env.float("PROCESSING_CLAIM_WINDOW_SECONDS", default=300.0)
PROCESSING_SHUTDOWN_GRACE_SECONDS = env.float("PROCESSING_SHUTDOWN_GRACE_SECONDS", default=10.0)
PROCESSING_WAKEUP_INTERVAL_SECONDS = env.float("PROCESSING_WAKEUP_INTERVAL_SECONDS", default=1.0)

# A task runs for at most claim window + lease: django-q2 must not kill it before (timeout)
# nor hand it out again while it may run (retry covers a prefetched task's wait behind a
# full queue_limit: three task lengths; docs/configuration.md).
_task_timeout = int(PROCESSING_CLAIM_WINDOW_SECONDS + PROCESSING_LEASE_SECONDS + 30)
QCLUSTER_WORKERS = env.int("QCLUSTER_WORKERS", default=4)
# The queue (wake-ups and the sweep only) in Redis instead of the database; schedules stay there.
QCLUSTER_REDIS_URL = env.str("QCLUSTER_REDIS_URL", default="")
Q_CLUSTER = {
    "name": "transactions",
    # The ORM broker must use the same alias as the Transaction model.
    **({"redis": QCLUSTER_REDIS_URL} if QCLUSTER_REDIS_URL else {"orm": "default"}),
    "workers": QCLUSTER_WORKERS,
    "timeout": _task_timeout,
    "retry": 3 * _task_timeout + 60,
    # Never retried by django-q2: leases and the sweep are the retry that matters.
    "max_attempts": 1,
    "ack_failures": True,
    # The transactions table is the record: no write (and pruning lock) per successful task.
    "save_limit": -1,
    "queue_limit": QCLUSTER_WORKERS,
    "catch_up": False,
    "poll": 0.2,
    "label": "Task queue",
}

# --- Retention (docs/operations.md) -------------------------------------------------
# Unset: PROCESSED transactions are kept forever.
_retention_days = env.str("RETENTION_DAYS", default="")
RETENTION_DAYS = int(_retention_days) if _retention_days.strip().isdigit() else None
if _retention_days.strip() and not (RETENTION_DAYS and RETENTION_DAYS >= 1):
    raise ImproperlyConfigured(
        "RETENTION_DAYS must be a whole number of days, 1 or more (unset: keep for ever)."
    )
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=1000)
RETENTION_BATCH_PAUSE_SECONDS = env.float("RETENTION_BATCH_PAUSE_SECONDS", default=0.05)
if RETENTION_BATCH_SIZE < 1 or RETENTION_BATCH_PAUSE_SECONDS < 0:
    raise ImproperlyConfigured(
        "RETENTION_BATCH_SIZE must be 1 or more, RETENTION_BATCH_PAUSE_SECONDS 0 or more."
    )

# --- Logging ----------------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# gunicorn.conf.py reads LOGGING from here too, so its lines take the same shape.
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured("LOG_FORMAT must be 'json' or 'text'.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "transactions.log.ContextFilter"}},
    "formatters": {
        "text": {
            "format": "%(asctime)s %(levelname)s %(name)s %(process)d [%(request_id)s] %(message)s",
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(levelname)s %(name)s %(process)d %(request_id)s %(transaction_id)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",  # ISO 8601, UTC
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "transactions": {"level": LOG_LEVEL},
        # At INFO django-q2 logs every enqueue and task: too much for a hot path.
        "django-q": {"level": env.str("DJANGO_Q_LOG_LEVEL", default="WARNING")},
    },
}

# --- Metrics ----------------------------------------------------------------------

METRICS_TOKEN = env.str("METRICS_TOKEN", default="")  # unset: only this host may scrape
# prometheus_client reads this variable itself (transactions/metrics.py).
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR:
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
# django-prometheus would query every database at start to count unapplied migrations.
PROMETHEUS_EXPORT_MIGRATIONS = False
