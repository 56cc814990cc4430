"""Settings for Preflight, read from the environment (and an optional `.env` beside manage.py).

Secrets have no defaults: `scripts/serve.sh` writes a `.env` with generated values on first start, and production
sets them in the environment. See `.env.example`.
"""

import ipaddress
import os
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env(
    DEBUG=(bool, False),
    ALLOWED_HOSTS=(list, ["127.0.0.1", "localhost"]),
    CSRF_TRUSTED_ORIGINS=(list, []),
)
# PREFLIGHT_ENV_FILE names another file (or /dev/null: none), e.g. to check a production environment from a checkout.
environ.Env.read_env(os.environ.get("PREFLIGHT_ENV_FILE", BASE_DIR / ".env"), overwrite=False)

SECRET_KEY = env("SECRET_KEY")
# Fernet keys for secrets at rest; the first encrypts, all decrypt, so keys can be rotated by prepending a new one.
PREFLIGHT_FERNET_KEYS = env.list("PREFLIGHT_FERNET_KEYS")
DEBUG = env("DEBUG")
ALLOWED_HOSTS = env("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_filters",
    "django_tables2",
    "ninja",
    "axes",
    "portal",
    "inventory",
    "checks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A database or broker failure in any door answers 503 with Retry-After (JSON under /api/), never 500.
    "portal.faults.UnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # A NUL in a path, query or JSON body, or an empty admin `_to_field`, is a 400 before any view (else a 500).
    "portal.middleware.RequestGuardMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

# Login throttling (django-axes) on /login/ and the admin's login, which both go through authenticate(): after
# AXES_FAILURE_LIMIT wrong passwords for one username from one address, that pair is locked out for
# AXES_COOLOFF_MINUTES (answer 429). Bearer tokens are 256-bit random values and are not throttled.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The address is REMOTE_ADDR: behind a reverse proxy that is the proxy's, so the lockout is then per username.

# Content-Security-Policy (django-csp) on every answer: scripts, styles, fonts and fetches only from the portal
# itself, no inline script, no inline style attribute, no plugin, no framing, forms post only here. Every page's
# JavaScript is a static file (portal/static/preflight/, the vendored htmx and Chart.js, the admin's and Swagger UI's
# own). img-src allows data: URIs for the icons in the admin's and Swagger UI's style sheets. A view that needs more
# says so with a csp.decorators decorator of its own (none does); tests/browser checks every page for violations.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

# HTTPS. Production (DEBUG off) is assumed to be served behind TLS: secure cookies, HSTS and the redirect to https
# are on unless PREFLIGHT_HTTPS=false says the portal is reached over plain HTTP (scripts/serve.sh's loopback
# quick start). Each setting can also be set on its own. Behind a TLS-terminating proxy set
# SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO (and make the proxy set that header, and strip it from clients).
PREFLIGHT_HTTPS = env.bool("PREFLIGHT_HTTPS", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PREFLIGHT_HTTPS)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=PREFLIGHT_HTTPS)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=PREFLIGHT_HTTPS)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if PREFLIGHT_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PREFLIGHT_HTTPS)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=PREFLIGHT_HTTPS)
_PROXY_SSL_HEADER = env("SECURE_PROXY_SSL_HEADER", default="")
SECURE_PROXY_SSL_HEADER = (_PROXY_SSL_HEADER, "https") if _PROXY_SSL_HEADER else None
USE_X_FORWARDED_HOST = env.bool("USE_X_FORWARDED_HOST", default=False)
SESSION_COOKIE_HTTPONLY = True

ROOT_URLCONF = "portal.urls"

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
            ],
        },
    },
]

WSGI_APPLICATION = "portal.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Keep a connection per process (per thread in the Celery worker) for a minute instead of opening one per request
# and per task: on PostgreSQL that is a TCP connect and an authentication for every node audited.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the portal and Celery worker processes share the embedded database. IMMEDIATE
    # transactions take the write lock when they begin, so a writer waits its turn (up to the timeout) instead of
    # failing with "database is locked" when it upgrades a read to a write after another process committed.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

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
# Where collectstatic copies to: the checkout by default; the systemd units use /var/lib/preflight/static, the one
# place their sandbox may write (deploy/systemd/).
STATIC_ROOT = env.path("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
# WhiteNoise serves the admin's and the UI's static files from the portal process itself, so the embedded default
# needs no web server in front and no asset ever comes from the internet.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Files the portal writes through a storage (collectstatic's copies; uploads are parsed in memory) are its user's
# alone, like everything else it writes (Django's default is 644); WhiteNoise reads them as that same user.
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# portal/static is found as the portal app's static folder (portal is an installed app since issue 25).
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "ui:home"
LOGOUT_REDIRECT_URL = "login"

# Uploaded inventories are parsed in memory; refuse anything larger than an inventory plausibly is (the size is
# checked before the upload is read), and more hosts than one import may create (in one transaction).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=5 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE
PREFLIGHT_INVENTORY_MAX_BYTES = env.int("PREFLIGHT_INVENTORY_MAX_BYTES", default=5 * 1024 * 1024)
PREFLIGHT_IMPORT_MAX_HOSTS = env.int("PREFLIGHT_IMPORT_MAX_HOSTS", default=5000)
# The requirement profile (its key) that clusters created without one get: the admin form's initial choice, the API
# and the inventory import. The newest GPUStack release by default; when no profile has this key, the profile marked
# "is default" in the admin (gpustack-2.0, GPUStack's requirements page, as shipped).
PREFLIGHT_DEFAULT_PROFILE = env("PREFLIGHT_DEFAULT_PROFILE", default="gpustack-2.3")
# Uploaded files are kept in memory up to that size and the rest only counted (never spooled to disk), a few per
# request at most.
FILE_UPLOAD_HANDLERS = ["portal.uploads.BoundedUploadHandler"]
DATA_UPLOAD_MAX_NUMBER_FILES = 5

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # paramiko logs a traceback for every peer that misbehaves; Preflight reports those as ssh.connect results.
    "loggers": {"paramiko": {"level": env("PARAMIKO_LOG_LEVEL", default="CRITICAL")}},
}

# Audits. Every wait has a bound, so a node audit always ends. A run whose worker was lost is re-queued when its
# lease runs out (below); PREFLIGHT_STUCK_AFTER bounds queued audits that no worker takes, and the matrix.
PREFLIGHT_SSH_CONNECT_TIMEOUT = env.float("PREFLIGHT_SSH_CONNECT_TIMEOUT", default=10.0)
PREFLIGHT_SSH_AUTH_TIMEOUT = env.float("PREFLIGHT_SSH_AUTH_TIMEOUT", default=15.0)
PREFLIGHT_PROBE_TIMEOUT = env.float("PREFLIGHT_PROBE_TIMEOUT", default=120.0)
PREFLIGHT_TOOL_TIMEOUT = env.int("PREFLIGHT_TOOL_TIMEOUT", default=20)
# A probe that prints nothing for this long is hung (every tool call is bounded by the tool time-out): the node
# ends as `error` then, without waiting for the whole probe time-out, which stays the outer bound.
PREFLIGHT_PROBE_IDLE_TIMEOUT = env.float("PREFLIGHT_PROBE_IDLE_TIMEOUT", default=PREFLIGHT_TOOL_TIMEOUT + 10.0)
PREFLIGHT_PROBE_MAX_BYTES = env.int("PREFLIGHT_PROBE_MAX_BYTES", default=4 * 1024 * 1024)
PREFLIGHT_STUCK_AFTER = env.float("PREFLIGHT_STUCK_AFTER", default=600.0)
PREFLIGHT_AUDIT_CONCURRENCY = env.int("PREFLIGHT_AUDIT_CONCURRENCY", default=16)
# History retention (checks.prune_audits, daily): finished audits older than this many days are deleted with their
# results and paths, except the newest PREFLIGHT_AUDIT_KEEP of each cluster, kept whatever their age.
PREFLIGHT_AUDIT_RETENTION_DAYS = env.int("PREFLIGHT_AUDIT_RETENTION_DAYS", default=180)
PREFLIGHT_AUDIT_KEEP = env.int("PREFLIGHT_AUDIT_KEEP", default=30)
# Losing Redis must not stop a worker: it reconnects for ever (Celery's default gives up after 100 tries), and a
# broker that is down makes "Audit now" fail in seconds with a clear message instead of hanging the request.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Tasks are acknowledged when they end (acks_late), and a task whose worker process died is given back to the queue
# (reject_on_worker_lost). Redis hands an unacknowledged message out again after the visibility time-out, so that
# must exceed the longest task (a node audit is cut at 330 s; a big connectivity matrix takes minutes): 3 hours. A
# killed worker's node audits do not wait for it: their leases run out and the sweep re-queues them (below).
PREFLIGHT_VISIBILITY_TIMEOUT = env.float("PREFLIGHT_VISIBILITY_TIMEOUT", default=3 * 3600.0)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "visibility_timeout": PREFLIGHT_VISIBILITY_TIMEOUT,
}
PREFLIGHT_PUBLISH_RETRY = {"max_retries": 4, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fix-up closes a worker's database connections before and after every task unless this is set: a
# new SQLite connection (its PRAGMAs and functions), or a PostgreSQL connect and authentication, for every node
# audited, whatever CONN_MAX_AGE says. Set, it closes them only every 2 x this many tasks; portal.celery closes them
# around each task the Django way instead, as CONN_MAX_AGE and CONN_HEALTH_CHECKS say (too old, or broken).
CELERY_DB_REUSE_MAX = 1_000_000
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A running node audit holds a lease that its worker renews every PREFLIGHT_LEASE_RENEW seconds. Once it has run out
# (the worker was killed or lost), the sweep (every 30 s) puts the node audit back in the queue and sends it again,
# up to PREFLIGHT_NODE_ATTEMPTS claims in all; after that it ends as `error`, saying Preflight lost it.
PREFLIGHT_LEASE_SECONDS = env.float("PREFLIGHT_LEASE_SECONDS", default=45.0)
PREFLIGHT_LEASE_RENEW = env.float("PREFLIGHT_LEASE_RENEW", default=PREFLIGHT_LEASE_SECONDS / 3)
PREFLIGHT_NODE_ATTEMPTS = env.int("PREFLIGHT_NODE_ATTEMPTS", default=3)
# Beat sends the sweep every 30 s (a Periodic task, editable in the admin); a sweep less than this many seconds
# after the last one is skipped (a lock in Redis), so two beats by mistake never sweep twice.
PREFLIGHT_SWEEP_MIN_GAP = env.float("PREFLIGHT_SWEEP_MIN_GAP", default=20.0)
# A queued node audit whose message is neither waiting in the broker nor delivered less than this long ago is lost
# (Redis lost it, or its worker died holding it): the sweep sends it again.
PREFLIGHT_REDELIVER_AFTER = env.float("PREFLIGHT_REDELIVER_AFTER", default=15.0)
# Writes that fail because the database is locked, busy, read-only or full are tried again with backoff for this
# long; the probe's results wait in memory meanwhile (the node is not probed again). After it, the node ends as
# `error` with Preflight's own cause ("Preflight could not record this node: the database is full").
PREFLIGHT_DB_WRITE_BUDGET = env.float("PREFLIGHT_DB_WRITE_BUDGET", default=120.0)
# The connectivity matrix: per-port connect time-out on the source, and the least a destination's listener lives
# on its own when its chunk cannot close it (the worker's machine died): at least this, or the chunk's time limit.
PREFLIGHT_NETWORK_CONNECT_TIMEOUT = env.float("PREFLIGHT_NETWORK_CONNECT_TIMEOUT", default=3.0)
PREFLIGHT_NETWORK_LISTENER_LIFETIME = env.float("PREFLIGHT_NETWORK_LISTENER_LIFETIME", default=180.0)
# The matrix runs in chunks that Celery workers take (issue 24): each chunk keeps at most this many listeners up (one
# SSH connection, so one paramiko thread, each), so a worker's threads stay under PREFLIGHT_MATRIX_CHUNK_LISTENERS
# + 2 * PREFLIGHT_AUDIT_CONCURRENCY + a few, whatever the cluster's size.
PREFLIGHT_MATRIX_CHUNK_LISTENERS = env.int("PREFLIGHT_MATRIX_CHUNK_LISTENERS", default=64)
# Where audits may connect: CIDRs, comma-separated, or `*` for anywhere. A guard against a mistyped or hostile
# inventory pointing Preflight at machines it has no business logging into. A node's name is resolved once per
# audit, the address checked here, and that very address connected to (checks/targets.py). Without DEBUG an empty
# list stops the portal at start: "anywhere" must be said with `*`.
PREFLIGHT_TARGET_NETWORKS = [n.strip() for n in env.list("PREFLIGHT_TARGET_NETWORKS", default=[]) if n.strip()]
if not PREFLIGHT_TARGET_NETWORKS and not DEBUG:
    raise ImproperlyConfigured(
        "PREFLIGHT_TARGET_NETWORKS is empty: set the networks audits may connect to (CIDRs, comma-separated), "
        "or `*` to allow any address"
    )
for _network in PREFLIGHT_TARGET_NETWORKS:
    if _network != "*":
        try:
            ipaddress.ip_network(_network, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"PREFLIGHT_TARGET_NETWORKS: {_network!r} is not a CIDR (or `*`)") from None
PREFLIGHT_TARGET_ALLOW_NAMES = env.bool("PREFLIGHT_TARGET_ALLOW_NAMES", default=True)
# The function that turns a node's name into addresses (dotted path; `(host, port) -> list[str]`). Tests name a
# resolver of their own here (a name whose answer changes between calls) instead of patching the socket module.
PREFLIGHT_TARGET_RESOLVER = env("PREFLIGHT_TARGET_RESOLVER", default="checks.targets.system_resolve")

# Waivers (issue 23): a waiver lasts at most this many days; the dashboard lists those expiring within the second.
PREFLIGHT_WAIVER_MAX_DAYS = env.int("PREFLIGHT_WAIVER_MAX_DAYS", default=90)
PREFLIGHT_WAIVER_EXPIRING_DAYS = env.int("PREFLIGHT_WAIVER_EXPIRING_DAYS", default=7)
# Regression alerts (issue 23). Webhooks: https only unless PREFLIGHT_WEBHOOK_ALLOW_HTTP; never a loopback,
# link-local or cloud metadata address unless its network is listed in PREFLIGHT_WEBHOOK_ALLOW_NETWORKS (CIDRs).
PREFLIGHT_WEBHOOK_ALLOW_HTTP = env.bool("PREFLIGHT_WEBHOOK_ALLOW_HTTP", default=False)
PREFLIGHT_WEBHOOK_ALLOW_NETWORKS = env.list("PREFLIGHT_WEBHOOK_ALLOW_NETWORKS", default=[])
PREFLIGHT_WEBHOOK_TIMEOUT = env.float("PREFLIGHT_WEBHOOK_TIMEOUT", default=10.0)
PREFLIGHT_WEBHOOK_MAX_ATTEMPTS = env.int("PREFLIGHT_WEBHOOK_MAX_ATTEMPTS", default=6)
PREFLIGHT_WEBHOOK_RETRY_BASE = env.float("PREFLIGHT_WEBHOOK_RETRY_BASE", default=30.0)  # 30 s, 1, 2, 4, 8 min
PREFLIGHT_ALERT_EMAIL_FROM = env("PREFLIGHT_ALERT_EMAIL_FROM", default="preflight@localhost")
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
# Prometheus /metrics (issue 23): loopback may scrape without a token (PREFLIGHT_METRICS_LOOPBACK), addresses in
# PREFLIGHT_METRICS_ALLOW_NETWORKS (CIDRs) too; anyone else sends `Authorization: Bearer <PREFLIGHT_METRICS_TOKEN>`.
PREFLIGHT_METRICS_LOOPBACK = env.bool("PREFLIGHT_METRICS_LOOPBACK", default=True)
PREFLIGHT_METRICS_ALLOW_NETWORKS = env.list("PREFLIGHT_METRICS_ALLOW_NETWORKS", default=[])
PREFLIGHT_METRICS_TOKEN = env("PREFLIGHT_METRICS_TOKEN", default="")
