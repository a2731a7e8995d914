"""Settings of the demo project. Everything that differs between machines comes from the environment.

DJANGO_SECRET_KEY, DJANGO_DEBUG (default on), DJANGO_ALLOWED_HOSTS (comma-separated),
DATABASE_URL (default: SQLite next to manage.py), DJANGO_CONN_MAX_AGE (default 0),
REDIS_URL (cache and channel layer; default: a file cache next to the SQLite file, in .django-cache/
with DATABASE_URL, or in DJANGO_CACHE_DIR, and an in-memory channel layer),
provider keys (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or GOOGLE_API_KEY),
STREAMING_MODELS (comma-separated provider:model ids), and STREAMING_<KEY> for every scalar key of the
STREAMING setting (project.environment): STREAMING_MONTHLY_BUDGET_USD, STREAMING_HEARTBEAT_SECONDS...
"""

from __future__ import annotations

import os
from pathlib import Path

from project.providers import streaming_setting

BASE_DIR = Path(__file__).resolve().parent.parent


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


DEBUG = env_flag("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("Set DJANGO_SECRET_KEY when DJANGO_DEBUG is off.")
    SECRET_KEY = "django-insecure-demo-only-" + "x" * 40
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "daphne",  # first, so that runserver serves ASGI
    "channels",
    "streaming",  # before the admin: its registration/logged_out.html is the one shown
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files under every server, not only runserver: gunicorn and uvicorn serve none of their own.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

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


def database_settings() -> dict[str, object]:
    url = os.environ.get("DATABASE_URL")
    if url:
        import dj_database_url

        # Persistent connections only where asked: under ASGI each request runs in a thread of its own
        # that ends with it, so a kept connection is never used again, and never closed (Django's docs:
        # disable them under ASGI). gunicorn gthread reuses its threads: DJANGO_CONN_MAX_AGE=60 suits it.
        max_age = int(os.environ.get("DJANGO_CONN_MAX_AGE", "0"))
        return dict(dj_database_url.parse(url, conn_max_age=max_age, conn_health_checks=max_age > 0))
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
        # WAL lets readers run beside the writer; IMMEDIATE takes the write lock at the start of a
        # transaction, so concurrent replies wait their turn instead of failing with "database is locked".
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


DATABASES = {"default": database_settings()}


def cache_settings() -> dict[str, object]:
    """Redis when REDIS_URL is set. Otherwise files, not local memory: every server process on this
    machine then sees the others' stop requests (the stop poller reads a few absent files per 0.25 s).

    The files are pickled sessions, so they live in the project's own directory (Django's file cache
    makes it 0700), never at a fixed path under the shared /tmp, where another local user could read
    them or plant a file the server would unpickle."""
    url = os.environ.get("REDIS_URL")
    if url:
        # Short timeouts, and an outage is a miss (project/cache.py): with Redis away, a request falls
        # back (sessions to the database) at once instead of failing or waiting on a dead connection.
        return {
            "BACKEND": "project.cache.FailSafeRedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
        }
    location = os.environ.get("DJANGO_CACHE_DIR")
    if not location:
        database = DATABASES["default"]
        if database["ENGINE"] == "django.db.backends.sqlite3":
            location = f"{database['NAME']}-cache"  # beside the database whose replies it stops
        else:
            location = str(BASE_DIR / ".django-cache")
    return {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": location}


def channel_layer_settings() -> dict[str, object]:
    url = os.environ.get("REDIS_URL")
    if url:
        return {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [url]}}
    return {"BACKEND": "channels.layers.InMemoryChannelLayer"}


CACHES = {"default": cache_settings()}
CHANNEL_LAYERS = {"default": channel_layer_settings()}
# Sessions are read from the cache (and written through to the database): every API request reads
# the session, and a cache read costs a fraction of a database query.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

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
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves the apps' static directories themselves, so the demo needs no collectstatic; after a
# collectstatic it serves STATIC_ROOT as well.
WHITENOISE_USE_FINDERS = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_flag("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

STREAMING = streaming_setting(os.environ)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "streaming": {"handlers": ["console"], "level": os.environ.get("STREAMING_LOG_LEVEL", "INFO")}
    },
}
