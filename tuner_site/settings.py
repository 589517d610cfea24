"""Django settings, all from the environment (see README "Configuration").

Development defaults are safe and need nothing: SQLite under var/, Redis on
localhost, a secret key generated once into var/. With DJANGO_ENV=production the
secret key and allowed hosts are required and the secure-cookie/HSTS settings on.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DJANGO_ENV = env("DJANGO_ENV", "development")
PRODUCTION = DJANGO_ENV == "production"
VAR_DIR = Path(env("TUNER_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    key = env("SECRET_KEY")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_ENV=production")
    # Development: generated once and kept in var/ (git-ignored), so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", not PRODUCTION)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1],testserver")
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DJANGO_ENV=production")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_ALLOW_CREDENTIALS = True

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "knox",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "experiments",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a login that tripped the lockout into the lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "tuner_site.urls"
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
WSGI_APPLICATION = None
ASGI_APPLICATION = "tuner_site.asgi.application"

DATABASE_URL = env("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
                                              conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes epochs.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
elif DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql"):
    # Fail fast instead of hanging when the server is unreachable (health checks, workers).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# Brute-force lockout (django-axes): after TUNER_LOGIN_FAILURE_LIMIT wrong passwords for one
# username from one client address, that pair is refused (429, even with the right password) for
# TUNER_LOGIN_COOLOFF_MINUTES after its last failure, on every door that calls authenticate() with
# the request: /login/, /admin/login/ and POST /api/auth/token/. Per username *and* address, so one
# attacker cannot lock everybody out; a successful login resets the count. Attempts are rows in the
# database (admin "Access attempts"; `manage.py axes_reset_username NAME` lifts a lockout).
AUTHENTICATION_BACKENDS = [
    "tuner_site.auth.AxesBackend",  # first: refuses locked-out pairs before the password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("TUNER_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("TUNER_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The cool-off runs from the last failure that counted: retries while locked out do not extend it,
# so "try again in N minutes" is true.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_DISABLE_ACCESS_LOG = True  # failures are what matter; no row (and no session) per successful login
# The same client address as the DRF throttles (TUNER_NUM_PROXIES hops of X-Forwarded-For, counted
# from the right). Not django-ipware's proxy count: it expects the proxies' own entries in the
# header, so a single proxy's "X-Forwarded-For: <client>" resolves to no address at all.
AXES_CLIENT_IP_CALLABLE = "tuner_site.throttling.client_address"
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_CALLABLE = "frontend.views.login_locked_out"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Front-end packages from the npm registry (`make assets`), served by whitenoise: no CDN.
NODE_MODULES = BASE_DIR / "node_modules"
STATICFILES_DIRS = [
    (prefix, NODE_MODULES / package)
    for prefix, package in (
        ("vendor/chartjs", "chart.js/dist"),
        ("vendor/fonts/orbitron", "@fontsource/orbitron"),
        ("vendor/fonts/source-code-pro", "@fontsource/source-code-pro"),
    )
    if (NODE_MODULES / package).is_dir()
]
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024)

# --- Redis, Celery, Channels -------------------------------------------------------------
REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
TUNER_QUEUE = env("TUNER_QUEUE", "tuner")
# The longest a run may take. Redis re-delivers an unacknowledged task after the
# visibility timeout, so it must stay above the hard time limit, or a long healthy
# run would be handed to a second worker while the first still trains it.
TUNER_MAX_RUN_SECONDS = env_int("TUNER_MAX_RUN_SECONDS", 6 * 3600)
CELERY_VISIBILITY_TIMEOUT = TUNER_MAX_RUN_SECONDS + 3600
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = TUNER_QUEUE
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = TUNER_MAX_RUN_SECONDS
CELERY_TASK_SOFT_TIME_LIMIT = TUNER_MAX_RUN_SECONDS - 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A worker that loses its broker connection cancels its acks_late tasks instead of finishing
# work whose message Redis will hand out again (Celery 6 default; silences its warning).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# Reliability (experiments/services.py "reliability"): a running worker touches heartbeat_at
# after every epoch and every TUNER_HEARTBEAT_SECONDS between batches; a running run whose
# heartbeat is older than TUNER_HEARTBEAT_STALE_SECONDS is taken for abandoned (its worker was
# killed) and re-enqueued. The stale threshold must stay well above TUNER_HEARTBEAT_SECONDS and
# above the slowest stretch without a batch (the first dataset load, one batch on a busy host).
TUNER_HEARTBEAT_SECONDS = float(env("TUNER_HEARTBEAT_SECONDS", "10"))
TUNER_HEARTBEAT_STALE_SECONDS = float(env("TUNER_HEARTBEAT_STALE_SECONDS", "120"))
TUNER_RECONCILE_INTERVAL_SECONDS = float(env("TUNER_RECONCILE_INTERVAL_SECONDS", "60"))
# Every worker's main process records itself (WorkerHeartbeat: the /lab/ status page) this often;
# a worker unseen for 3 intervals is shown offline.
TUNER_WORKER_HEARTBEAT_SECONDS = float(env("TUNER_WORKER_HEARTBEAT_SECONDS", "15"))
# Runs by `celery beat` (or a worker started with -B); every worker also reconciles at start-up.
CELERY_BEAT_SCHEDULE = {
    "reconcile-runs": {
        "task": "experiments.reconcile_runs",
        "schedule": TUNER_RECONCILE_INTERVAL_SECONDS,
        # A reconcile that waited longer than one interval in the queue is superseded by the next.
        "options": {"expires": TUNER_RECONCILE_INTERVAL_SECONDS},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py >= 8 times reads out after 5 s by default, the same 5 s channels_redis
            # blocks waiting for a message: an idle consumer would die (channels_redis#422).
            "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            "prefix": env("TUNER_CHANNEL_PREFIX", "tuner"),
            "capacity": 1000,
            "expiry": 30,
        },
    }
}

# --- Tuner -----------------------------------------------------------------------------
TUNER_MAX_ACTIVE_RUNS_PER_USER = env_int("TUNER_MAX_ACTIVE_RUNS_PER_USER", 20)
# Bytes of weights + checkpoints a user's runs may store before new runs are refused (0 = unlimited).
TUNER_MAX_STORAGE_BYTES_PER_USER = env_int("TUNER_MAX_STORAGE_BYTES_PER_USER", 2 * 1024**3)
TUNER_MAX_ATTEMPTS = env_int("TUNER_MAX_ATTEMPTS", 3)
TUNER_ARTIFACT_DIR = Path(env("TUNER_ARTIFACT_DIR", str(VAR_DIR / "artifacts")))
# Where runs' checkpoints and weights live (experiments/storage.py): "filesystem" (TUNER_ARTIFACT_DIR)
# or "s3", an S3-compatible bucket through django-storages, so workers need no shared disk.
TUNER_ARTIFACT_STORAGE = env("TUNER_ARTIFACT_STORAGE", "filesystem")
if TUNER_ARTIFACT_STORAGE == "filesystem":
    STORAGES["artifacts"] = {"BACKEND": "django.core.files.storage.FileSystemStorage",
                             "OPTIONS": {"location": str(TUNER_ARTIFACT_DIR), "base_url": "/artifacts/"}}
elif TUNER_ARTIFACT_STORAGE == "s3":
    if not env("AWS_STORAGE_BUCKET_NAME"):
        raise ImproperlyConfigured("TUNER_ARTIFACT_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME")
    from boto3.s3.transfer import TransferConfig

    STORAGES["artifacts"] = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": env("AWS_STORAGE_BUCKET_NAME"),
        "endpoint_url": env("AWS_S3_ENDPOINT_URL") or None,  # empty: AWS itself
        "region_name": env("AWS_S3_REGION_NAME") or None,
        "access_key": env("AWS_ACCESS_KEY_ID") or None,  # empty: boto3's own chain (instance role, ...)
        "secret_key": env("AWS_SECRET_ACCESS_KEY") or None,
        "location": env("AWS_LOCATION", ""),  # a key prefix inside the bucket
        "file_overwrite": True,  # a checkpoint replaces the previous one under the same key
        "default_acl": None,
        # One PUT of the complete object (no multipart below S3's 5 GB single-PUT limit).
        "transfer_config": TransferConfig(multipart_threshold=5 * 1024**3, use_threads=False),
    }}
else:
    raise ImproperlyConfigured(f"TUNER_ARTIFACT_STORAGE must be filesystem or s3, not {TUNER_ARTIFACT_STORAGE!r}")
# How often a running worker looks for a cancel request (seconds); checked between batches.
TUNER_CANCEL_POLL_SECONDS = float(env("TUNER_CANCEL_POLL_SECONDS", "0.2"))
# Fault-injection seam: every training batch sleeps this long (0 = off), so tests and benches
# can interrupt a run at a known point with epochs that last long enough.
TUNER_BATCH_DELAY_SECONDS = float(env("TUNER_BATCH_DELAY_SECONDS", "0"))
# Created runs are sent to the broker. Off only where the caller executes runs itself
# (tests that play the broker call services.experiment_run directly).
TUNER_DISPATCH_RUNS = True
# /health pings the workers (a 1 s broadcast); its answer is shared by every web process through
# the cache for this many seconds (older: one caller pings again while the others get the last count).
TUNER_HEALTH_WORKERS_CACHE_SECONDS = float(env("TUNER_HEALTH_WORKERS_CACHE_SECONDS", "5"))
# Fault injection only (experiments/faults.py): "final_commit=3,sweep_refill=3" pauses there.
TUNER_FAULT_PAUSES = {name.strip(): float(seconds) for name, _, seconds in
                      (item.partition("=") for item in env("TUNER_FAULT_PAUSES", "").split(",") if item.strip())}
# A database outage at an epoch boundary: retries with doubling waits (0.5 s, 1 s, 2 s, ...),
# then the worker hands the run back to the queue instead of failing it.
TUNER_DB_RETRIES = env_int("TUNER_DB_RETRIES", 6)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "experiments.api.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": [],
    # JSON with a nesting-depth limit and finite numbers only (400 otherwise); forms as usual.
    "DEFAULT_PARSER_CLASSES": ["experiments.api.parsers.LimitedJSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    # Abuse limits (counted in the shared Redis cache below; 429 + Retry-After when exceeded).
    # Views opt in with `throttle_scope`: run creation per user, token exchange per client address.
    "DEFAULT_THROTTLE_CLASSES": ["tuner_site.throttling.FailOpenScopedRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "run_create": env("TUNER_THROTTLE_RUN_CREATE", "60/min"),
        # Creating or extending a sweep (each can queue many trials).
        "sweep_write": env("TUNER_THROTTLE_SWEEP_WRITE", "10/min"),
        "auth": env("TUNER_THROTTLE_AUTH", "20/min"),
        # Inspecting a trained run, per user: predictions (the page predicts while you draw, at
        # most every 0.4 s), and misclassified + filters (one budget).
        "predict": env("TUNER_THROTTLE_PREDICT", "300/min"),
        "inspect": env("TUNER_THROTTLE_INSPECT", "120/min"),
        # GET /health, per client address (no login).
        "health": env("TUNER_THROTTLE_HEALTH", "60/min"),
    },
    # Client address for the per-address limits: REMOTE_ADDR by default (X-Forwarded-For is not
    # trusted); behind N reverse proxies set TUNER_NUM_PROXIES=N.
    "NUM_PROXIES": env_int("TUNER_NUM_PROXIES", 0),
}

# The throttles' counters live here, so every web process shares them. Tests get their own
# key prefix (TUNER_CHANNEL_PREFIX is per test run), so they never see a server's counters.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("TUNER_CACHE_PREFIX", env("TUNER_CHANNEL_PREFIX", "tuner")),
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}
# API tokens (django-rest-knox): one per POST /api/auth/token/ (or the /tokens/ page), stored as
# SHA-512 digests, sent as "Authorization: Token <token>", expiring TUNER_TOKEN_TTL_HOURS after
# creation, revocable one by one; a password change deletes the user's tokens
# (experiments/services/tokens.py).
TUNER_TOKEN_TTL_HOURS = env_int("TUNER_TOKEN_TTL_HOURS", 720)
if TUNER_TOKEN_TTL_HOURS < 1:
    raise ImproperlyConfigured("TUNER_TOKEN_TTL_HOURS must be at least 1")
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=TUNER_TOKEN_TTL_HOURS),
    "AUTH_HEADER_PREFIX": "Token",  # what DRF's tokens used: existing scripts keep their header
    "AUTO_REFRESH": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tuner API",
    "DESCRIPTION": "Queue, follow and analyse NumPy network training runs on Fashion-MNIST.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# LOG_FORMAT=json (the default in production): one JSON object per line, with `experiment_id`
# when the call passed one (tuner_site/logging.py); LOG_FORMAT=plain for humans.
LOG_FORMAT = env("LOG_FORMAT", "json" if PRODUCTION else "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "tuner_site.logging.JsonLinesFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler",
                             "formatter": "json" if LOG_FORMAT == "json" else "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    # axes: a failed login is a WARNING (username masked), a lockout too; its INFO chatter is not kept.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

if PRODUCTION:
    # DEBUG stays off unless DEBUG=1 is set explicitly (and then `check --deploy` complains).
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure-"):
        raise ImproperlyConfigured("SECRET_KEY must be a long random value (50+ characters) in production")
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # /health is probed over plain HTTP inside the container network.
    SECURE_REDIRECT_EXEMPT = [r"^health$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_HTTPONLY = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"
