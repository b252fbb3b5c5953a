"""gpufit settings: one file, driven by the environment.

Development defaults apply only while DEBUG is on; with DEBUG off the process
refuses to start on an unsafe value. Every variable is listed in README.md.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off).")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


VAR_DIR = Path(env_str("GPUFIT_VAR_DIR", str(BASE_DIR / "var")))
# A worker's folder of real GGUF downloads: a llama.cpp job for model M in format F runs `<M's slug>-<F>.gguf` from
# here (any case) instead of a generated random-weight file. Empty: always generate.
GPUFIT_REAL_GGUF_DIR = env_str("GPUFIT_REAL_GGUF_DIR", "")

# Under pytest the development defaults apply unless DEBUG says otherwise (pytest-django
# imports settings before any conftest can set the environment); production never runs pytest.
TESTING = "pytest" in sys.modules
DEBUG = env_bool("DEBUG", default=TESTING)

# Commands that only read the catalog and print serve no request and sign nothing, so they need no secret and no
# host list: `python manage.py estimate …` works in a plain shell, as the README shows it.
READ_ONLY_COMMANDS = {"estimate", "help", "version"}
READ_ONLY_RUN = len(sys.argv) > 1 and Path(sys.argv[0]).name == "manage.py" and sys.argv[1] in READ_ONLY_COMMANDS

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG and not READ_ONLY_RUN:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY to a long random string, "
            "or set DEBUG=1 for a development server with a throw-away key."
        )
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production" if DEBUG else secrets.token_urlsafe(50)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS and not READ_ONLY_RUN:
    raise ImproperlyConfigured("ALLOWED_HOSTS is empty. With DEBUG off, list the host names the site answers to.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "core",  # API tokens and the catalog change history (app label "gpufit")
    "hardware",
    "models",
    "planner",
    "inference",
    "ninja",  # serves the API docs page's Swagger UI from its own static files, no CDN
    "gpufit",  # the config package: load_catalog, run_worker and the system checks (app label "site")
]

# Every middleware that adds a security header sits above the ones that may answer by themselves (413, 400,
# 429, 503), so those answers carry the same headers as a page.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "gpufit.middleware.SecurityHeadersMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "gpufit.middleware.BodySizeMiddleware",
    "gpufit.middleware.NullCharacterMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "gpufit.middleware.LoginRateLimitMiddleware",
    "gpufit.middleware.DatabaseUnavailableMiddleware",
    "planner.lookup.CatalogFreshnessMiddleware",
]

ROOT_URLCONF = "gpufit.urls"

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

WSGI_APPLICATION = "gpufit.wsgi.application"

# Database: DATABASE_URL, else an SQLite file under var/ (the embedded default). A persistent connection is checked
# before a request reuses it: one that a database restart closed while its process sat idle would otherwise fail
# that process's first request after the database came back (docs/performance.md, "Load with faults").
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
        )
    }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "gpufit.sqlite3",
            "OPTIONS": {"timeout": 20},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))

# Operators (not staff) log in on a page of the site's own; the admin keeps its login page for editors.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "inference:benchmarks"
LOGOUT_REDIRECT_URL = "home"

# Cache: Redis when REDIS_URL (or CACHE_URL) is set, so every gunicorn worker shares the rate-limit
# counters; a per-process memory cache otherwise (the embedded default runs one process).
CACHE_URL = env_str("CACHE_URL") or env_str("REDIS_URL")
if CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "gpufit",
            "TIMEOUT": 300,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "gpufit"}}

# Rate limits, LIMIT/SECONDS over a sliding window (core/ratelimit.py). Job triggers per user; recommend per client
# address (it ranks the whole catalog); failed logins (admin and operator pages) per address.
GPUFIT_RATE_JOBS = env_str("GPUFIT_RATE_JOBS", "30/60")
GPUFIT_RATE_RECOMMEND = env_str("GPUFIT_RATE_RECOMMEND", "120/60")
GPUFIT_RATE_LOGIN_FAILURES = env_str("GPUFIT_RATE_LOGIN_FAILURES", "5/60")
# Behind a reverse proxy, the header holding the client address (e.g. HTTP_X_FORWARDED_FOR); empty: REMOTE_ADDR.
GPUFIT_TRUSTED_PROXY_HEADER = env_str("GPUFIT_TRUSTED_PROXY_HEADER")

# Request bodies: forms and JSON are small (1 MB); uploads stop at the admin CSV import's 5 MB cap plus
# multipart framing. Larger bodies get a 413 before they are read (gpufit.middleware.BodySizeMiddleware).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024)
GPUFIT_MAX_UPLOAD_BYTES = env_int("GPUFIT_MAX_UPLOAD_BYTES", 6 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = GPUFIT_MAX_UPLOAD_BYTES
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000

# Content Security Policy (gpufit.middleware.SecurityHeadersMiddleware). Every script is a file under
# static/, so no inline script and no eval: plotly.js draws our SVG charts without 'unsafe-eval' (only its
# WebGL traces compile functions at run time), htmx needs nothing while templates avoid hx-on and js: values.
# 'unsafe-inline' styles stay because plotly.js and htmx both insert <style> elements. See docs/security.md.
CONTENT_SECURITY_POLICY = env_str(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'",
)
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), usb=()"

# Celery: REDIS_URL (or CELERY_BROKER_URL), else kombu's filesystem transport
# under var/, which needs no server (see FIELD-NOTES: works across processes).
REDIS_URL = env_str("REDIS_URL")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3600)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3300)
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 7200)
if CELERY_BROKER_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
    CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or None
else:
    BROKER_DIR = VAR_DIR / "broker"
    # kombu's filesystem transport expects its folders to exist, in the web process and the worker alike.
    for _folder in ("queue", "processed", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Broadcast exchanges (revoke, pidbox); kombu's default is a "control" folder in the working directory.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# The host name a worker registers under; its queue is gpu.<host>.
GPUFIT_WORKER_HOST = env_str("GPUFIT_WORKER_HOST", socket.gethostname())
# A worker is shown "stale" when its last heartbeat is older than this.
GPUFIT_HEARTBEAT_STALE_S = env_int("GPUFIT_HEARTBEAT_STALE_S", 120)
# How often a worker beats (and looks for lost or stranded jobs), and how long a job may sit queued before
# its message is sent again (a Redis restarted without persistence forgets its queues).
GPUFIT_HEARTBEAT_S = env_int("GPUFIT_HEARTBEAT_S", 30)
GPUFIT_REQUEUE_AFTER_S = env_int("GPUFIT_REQUEUE_AFTER_S", 900)
# Anonymous catalog pages are served from the cache for this long while the catalog is unchanged (0: off).
GPUFIT_PAGE_CACHE_S = env_int("GPUFIT_PAGE_CACHE_S", 600)
# Optional local Mixtral safetensors checkpoint for benchmarks with real weights.
GPUFIT_CHECKPOINT_DIR = env_str("GPUFIT_CHECKPOINT_DIR")

# Production hardening: on whenever DEBUG is off.
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
