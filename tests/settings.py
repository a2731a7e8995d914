"""Settings for the test suite: the app alone, with a scripted provider and the offline demo."""

from __future__ import annotations

import os
import tempfile

DEBUG = False
SECRET_KEY = "tests-only-not-secret"
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"

INSTALLED_APPS = [
    "streaming",  # before the admin, as the README says: its registration/logged_out.html wins
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

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
            ]
        },
    }
]

if os.environ.get("DATABASE_URL"):
    import dj_database_url

    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
else:
    # A file in WAL mode, as a deployment's SQLite would be: the app's own threads (database work,
    # leases, takeovers) read and write beside the test's, and an in-memory database shared between
    # connections locks whole tables instead ("database table is locked", at once, without waiting).
    _sqlite = os.environ.get("SQLITE_PATH") or os.path.join(
        tempfile.mkdtemp(prefix="streaming-tests-"), "db.sqlite3"
    )
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _sqlite,
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;",
            },
            "TEST": {"NAME": _sqlite},
        }
    }

if os.environ.get("REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The WebSocket consumer's tests run in one process: the in-memory layer is enough (the scale-out tests
# run the demo project, with channels_redis when REDIS_URL is set).
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

STREAMING = {
    "PROVIDERS": {
        "scripted": {"BACKEND": "streaming.providers.scripted.ScriptedProvider"},
        "backup": {"BACKEND": "streaming.providers.scripted.ScriptedProvider"},
        "demo": {"BACKEND": "streaming.providers.demo.DemoProvider", "OPTIONS": {"tokens_per_second": 0}},
    },
    "MODELS": [
        "scripted:model-a",
        {"id": "scripted:thinker", "label": "Thinker", "reasoning": True},
        "backup:model-b",
        {"id": "demo:echo", "label": "Demo", "reasoning": True},
    ],
    "RETRY_BASE_DELAY": 0.01,
    "RETRY_MAX_DELAY": 0.05,
    "STOP_POLL_SECONDS": 0.05,
    # Tests run many replies as one user, whose id the next test reuses: the limits' own tests set them.
    "MAX_CONCURRENT_REPLIES": None,
    "REPLIES_PER_MINUTE": None,
}
