"""Settings for the webhook service.

Every setting that differs between deployments is read from the environment here,
and nowhere else. Defaults are the safe production choice; the one embedded default
is SQLite, so a newcomer can run the service with nothing else installed.
No `.env` file is read here: `make run` loads its local one through honcho, so tests
and other commands never pick up a developer's local settings.
"""

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

# One chain for every request, webhooks included. What may refuse a request (plain http,
# a Host not in ALLOWED_HOSTS: CommonMiddleware asks get_host()) comes first, before
# WhiteNoise, so static files are refused to a foreign Host too. Sessions, CSRF, auth,
# messages and axes cost a webhook little (~7%): its view never touches them, so they stay
# lazy. Request metrics leave webhooks out (transactions/metrics.py).
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

# The admin's URL prefix; moving it off /admin/ cuts down on drive-by login attempts.
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
# Database connections per web worker process (gunicorn's gevent worker); see below.
DATABASE_POOL_SIZE = env.int("DATABASE_POOL_SIZE", default=16)
# Off behind a pooler that cannot keep prepared statements (PgBouncer < 1.21 in
# transaction mode).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
if _db["ENGINE"] == "django.db.backends.postgresql":
    # Fail fast when the database is unreachable, so a webhook gets a quick 503
    # (and the sender retries) rather than a hung request.
    _db.setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=3)
    )
    # A database that vanishes without closing the connection (a network partition, a
    # dead host) must not hang an open connection either: a statement the server does
    # not acknowledge fails after this long, and keepalives find a silent peer.
    _db["OPTIONS"].setdefault("tcp_user_timeout", env.int("DATABASE_TCP_USER_TIMEOUT_MS", default=5000))
    _db["OPTIONS"].setdefault("keepalives", 1)
    _db["OPTIONS"].setdefault("keepalives_idle", 10)
    _db["OPTIONS"].setdefault("keepalives_interval", 5)
    _db["OPTIONS"].setdefault("keepalives_count", 3)
    # A statement stuck behind someone else's lock (a long migration, a forgotten
    # transaction) gives up after this long: the webhook gets a 503, not a hang.
    _db["OPTIONS"].setdefault(
        "options", f"-c lock_timeout={env.int('DATABASE_LOCK_TIMEOUT_MS', default=5000)}"
    )
    _db["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    # Database connections one web worker process shares among its requests. gunicorn's
    # gevent worker serves each connection in a greenlet of its own, and Django keeps a
    # database connection per greenlet: without a pool, 1,000 clients would want 1,000
    # connections. Each request takes one from the pool for as long as it runs (a client
    # still sending its body holds none) and waits up to DATABASE_CONNECT_TIMEOUT for one.
    # Processes without greenlets (qcluster, manage.py, tests) keep one persistent
    # connection each and no pool: django-q2 forks its workers, and a pool does not
    # survive a fork.
    if _served_by_greenlets():
        _db["OPTIONS"]["pool"] = {
            "min_size": min(4, DATABASE_POOL_SIZE),
            "max_size": DATABASE_POOL_SIZE,
            "timeout": _db["OPTIONS"]["connect_timeout"],
            # While the database is away the pool retries with growing pauses (1, 2, 4 s...).
            # Giving up after this long, it starts afresh on the next request: the web
            # reconnects within seconds of the database's return, however long it was away.
            "reconnect_timeout": 5,
        }
        _db["CONN_MAX_AGE"] = 0  # the pool keeps the connections
    # Off: a health check is a second round trip on every webhook (~15% of its CPU time).
    # A webhook that meets a connection the database dropped is retried on a fresh one
    # (services._upsert); other requests answer 503 once and Django reconnects after.
    _db["CONN_HEALTH_CHECKS"] = env.bool("DATABASE_CONN_HEALTH_CHECKS", default=False)
    # Django turns psycopg's prepared statements off (threshold None); the webhook's
    # INSERT asks for one explicitly (transactions/fastpath.py), planned once per
    # connection. Django's own queries bind on the client and are never prepared.
    if DATABASE_PREPARED_STATEMENTS:
        _db["OPTIONS"].setdefault("prepare_threshold", 5)
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the workers write at the same time: WAL lets readers go on,
    # IMMEDIATE transactions and a busy timeout make writers queue instead of failing.
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
# Where `collectstatic` writes (and WhiteNoise serves from); tests use a temporary one.
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Tests and DEBUG runs work without `collectstatic`; production serves the
        # compressed, hashed files that `collectstatic` wrote.
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        ),
    },
}

# --- HTTP API ---------------------------------------------------------------------

# Webhook bodies are small; anything larger is refused before it is read.
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

# OpenAPI schema at /api/schema/, browsable docs at /api/docs/ (assets served locally).
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

# Seconds a sender is told to wait before retrying when the database is unavailable.
RETRY_AFTER_SECONDS = env.int("RETRY_AFTER_SECONDS", default=5)

# --- Security ---------------------------------------------------------------------
# docs/security.md. Defaults are the production choice; `make run`'s .env relaxes what
# plain http on localhost needs.

# Standard Webhooks secrets (`whsec_...`), comma-separated: a webhook signed with any of
# them is accepted, so a secret can be rotated without downtime; the first one signs
# `manage.py send_webhook`. Unset: unsigned webhooks are accepted (and warned about).
WEBHOOK_SECRETS = env.list("WEBHOOK_SECRETS", default=[])
for _secret in WEBHOOK_SECRETS:
    if not is_valid_secret(_secret):
        raise ImproperlyConfigured(
            "WEBHOOK_SECRETS must hold whsec_<base64 of 24+ random bytes> secrets, comma-separated "
            "(`python manage.py send_webhook --new-secret` makes one)."
        )
# A signed webhook whose timestamp is further than this from now is refused as a replay.
WEBHOOK_TOLERANCE_SECONDS = env.int("WEBHOOK_TOLERANCE_SECONDS", default=5 * 60)

# GET /v1/transactions/{id} needs an API key (`Authorization: Bearer <key>`, keys made by
# staff in the admin) unless this opens it to everyone (local development, demos).
STATUS_API_PUBLIC = env.bool("STATUS_API_PUBLIC", default=False)

# Served over HTTPS, directly or behind a TLS-terminating proxy: plain-http requests are
# redirected (except the health check at /, which load balancers probe over http),
# cookies are secure-only, and browsers are told to use https only (HSTS).
HTTPS = env.bool("DJANGO_HTTPS", default=True)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=365 * 24 * 3600 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=True)
# The header by which the TLS proxy says the client used https. The proxy must set (or
# strip) it on every request; set it empty when nothing sits in front of gunicorn.
_proxy_ssl_header = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="X-Forwarded-Proto")
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https") if _proxy_ssl_header else None
)

# The reverse proxies in front of gunicorn (IPs or CIDR ranges, comma-separated). For a
# request from one of them, the client is the right-most X-Forwarded-For address that is
# not a trusted proxy (transactions/middleware.py); the /metrics rule for local scrapers and
# the admin's login lockout use it. Empty (the default): X-Forwarded-For is ignored and
# REMOTE_ADDR is the client, which is right only when nothing sits in front.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
for _proxy in TRUSTED_PROXIES:
    try:
        ip_network(_proxy, strict=False)
    except ValueError as error:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {error}") from error

# Admin logins: after AXES_FAILURE_LIMIT failures for one username from one address,
# that pair is locked out for the cool-off time (a 429), then may try again.
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
# Only the admin site's logins count; API requests never authenticate with passwords.
AXES_ONLY_ADMIN_SITE = True

# --- Processing -------------------------------------------------------------------
# Without PAYMENT_API_URL the external call is simulated: it waits
# PROCESSING_DELAY_SECONDS. The other numbers are derived from it so that they stay
# consistent when it changes.

PROCESSING_DELAY_SECONDS = env.float("PROCESSING_DELAY_SECONDS", default=30.0)
# Fraction (0..1) of simulated external calls that fail (retryable), for tests and demos of the retry path.
PROCESSING_FAILURE_RATE = env.float("PROCESSING_FAILURE_RATE", default=0.0)
# An external call that takes longer than this is abandoned and counted as failed.
PROCESSING_CALL_TIMEOUT_SECONDS = env.float(
    "PROCESSING_CALL_TIMEOUT_SECONDS", default=PROCESSING_DELAY_SECONDS + 15
)
# A claim on a transaction expires this long after it was taken. It must outlast the
# call timeout, so that a live worker's call is never duplicated by another worker;
# it bounds how long a transaction waits after its worker was killed.
PROCESSING_LEASE_SECONDS = env.float("PROCESSING_LEASE_SECONDS", default=PROCESSING_CALL_TIMEOUT_SECONDS + 15)
if PROCESSING_LEASE_SECONDS <= PROCESSING_CALL_TIMEOUT_SECONDS:
    raise ImproperlyConfigured("PROCESSING_LEASE_SECONDS must exceed PROCESSING_CALL_TIMEOUT_SECONDS.")
# The payment API processing calls: POST <url> with the transaction as JSON and an
# Idempotency-Key header (transactions/payment_api.py). Unset: the simulated call.
PAYMENT_API_URL = env.str("PAYMENT_API_URL", default="")
# Caps on the calls to it, for the whole cluster (every qcluster on every host): calls
# in flight at once, and calls started per second. 0: no cap.
PAYMENT_API_MAX_CONCURRENCY = env.int("PAYMENT_API_MAX_CONCURRENCY", default=0)
PAYMENT_API_MAX_RATE = env.float("PAYMENT_API_MAX_RATE", default=0.0)
if PAYMENT_API_MAX_CONCURRENCY < 0 or PAYMENT_API_MAX_RATE < 0:
    raise ImproperlyConfigured(
        "PAYMENT_API_MAX_CONCURRENCY and PAYMENT_API_MAX_RATE must be 0 (no cap) or more."
    )
# External calls one worker process keeps in flight at most. A call is a wait, not
# work: each costs a few kilobytes, so the default bounds a worker's memory, not its
# speed. Capacity is QCLUSTER_WORKERS x this / call duration (docs/performance.md: the capacity model).
PROCESSING_CONCURRENCY = env.int("PROCESSING_CONCURRENCY", default=10_000)
# Attempts before a transaction is marked FAILED; retries wait BACKOFF * 2**(n-1) seconds.
PROCESSING_MAX_ATTEMPTS = env.int("PROCESSING_MAX_ATTEMPTS", default=5)
PROCESSING_RETRY_BACKOFF_SECONDS = env.float("PROCESSING_RETRY_BACKOFF_SECONDS", default=2.0)
# How often a busy worker looks for newly arrived transactions.
PROCESSING_POLL_SECONDS = env.float("PROCESSING_POLL_SECONDS", default=0.5)
# A worker with nothing in flight keeps looking this long before it frees itself.
PROCESSING_IDLE_SECONDS = env.float("PROCESSING_IDLE_SECONDS", default=5.0)
# A round takes new transactions for at most this long (less a random part of up to a
# half, so that rounds end at different times), then finishes its calls and queues the
# next round; this keeps each django-q2 task's run time bounded.
PROCESSING_CLAIM_WINDOW_SECONDS = env.float("PROCESSING_CLAIM_WINDOW_SECONDS", default=300.0)
# On shutdown, calls in flight get this long to finish; the rest are handed back.
PROCESSING_SHUTDOWN_GRACE_SECONDS = env.float("PROCESSING_SHUTDOWN_GRACE_SECONDS", default=10.0)
# A web process wakes the workers at most this often; the periodic sweep is the backstop.
PROCESSING_WAKEUP_INTERVAL_SECONDS = env.float("PROCESSING_WAKEUP_INTERVAL_SECONDS", default=1.0)

# One processing task runs for at most claim window + lease. django-q2 must not kill
# it before that (timeout), nor hand it out again while it may still run (retry). The
# ORM broker's clock starts when the pusher prefetches a task, and a prefetched task
# can wait behind a full queue_limit (= workers) of tasks for up to two task lengths
# before it starts: so retry covers three, plus a margin.
_task_timeout = int(PROCESSING_CLAIM_WINDOW_SECONDS + PROCESSING_LEASE_SECONDS + 30)
QCLUSTER_WORKERS = env.int("QCLUSTER_WORKERS", default=4)
# django-q2's queue carries only wake-ups and the sweep. By default it is a table in the
# database; with a Redis URL (redis://host:6379/0) it lives in Redis instead
# (docs/operations.md: when to switch). Schedules stay in the database either way.
QCLUSTER_REDIS_URL = env.str("QCLUSTER_REDIS_URL", default="")
Q_CLUSTER = {
    "name": "transactions",
    # The ORM broker must use the same alias as the Transaction model.
    **({"redis": QCLUSTER_REDIS_URL} if QCLUSTER_REDIS_URL else {"orm": "default"}),
    "workers": QCLUSTER_WORKERS,
    "timeout": _task_timeout,
    "retry": 3 * _task_timeout + 60,
    # A processing task is never retried by django-q2: the transactions it held are
    # recovered by their leases and the sweep, which is the retry that matters.
    "max_attempts": 1,
    "ack_failures": True,
    # The transactions table is the record of outcomes; storing every successful
    # task would only add a write (and django-q2's pruning lock) per task.
    "save_limit": -1,
    "queue_limit": QCLUSTER_WORKERS,
    "catch_up": False,
    "poll": 0.2,
    "label": "Task queue",
}

# --- Retention --------------------------------------------------------------------
# PROCESSED transactions are deleted this many days after their processed_at, by a
# schedule qcluster creates at start (docs/operations.md: Retention). Unset: kept for
# ever. FAILED and PROCESSING transactions are never deleted automatically.
_retention_days = env.str("RETENTION_DAYS", default="")
RETENTION_DAYS = int(_retention_days) if _retention_days.strip().isdigit() else None
if _retention_days.strip() and not (RETENTION_DAYS and RETENTION_DAYS >= 1):
    raise ImproperlyConfigured(
        "RETENTION_DAYS must be a whole number of days, 1 or more (unset: keep for ever)."
    )
# Rows one DELETE removes, and the pause after each: short transactions that leave
# room for ingestion and autovacuum (docs/performance.md: Retention).
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=1000)
RETENTION_BATCH_PAUSE_SECONDS = env.float("RETENTION_BATCH_PAUSE_SECONDS", default=0.05)
if RETENTION_BATCH_SIZE < 1 or RETENTION_BATCH_PAUSE_SECONDS < 0:
    raise ImproperlyConfigured(
        "RETENTION_BATCH_SIZE must be 1 or more, RETENTION_BATCH_PAUSE_SECONDS 0 or more."
    )

# --- Logging ----------------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# One JSON object per line in production; readable text in development. gunicorn's own
# lines take the same shape (gunicorn.conf.py reads LOG_FORMAT and LOGGING from here).
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
        # django-q2 logs every enqueue and every task at INFO: too much for a hot path.
        "django-q": {"level": env.str("DJANGO_Q_LOG_LEVEL", default="WARNING")},
    },
}

# --- Metrics ----------------------------------------------------------------------

# /metrics: with METRICS_TOKEN set, Prometheus must send "Authorization: Bearer <token>";
# without it, only clients on this host (127.0.0.1, ::1) may scrape.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# prometheus_client reads this variable itself; see transactions/metrics.py.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR:
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
# django-prometheus would query every database at start to count unapplied migrations.
PROMETHEUS_EXPORT_MIGRATIONS = False
