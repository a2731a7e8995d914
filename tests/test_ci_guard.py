"""Each CI leg runs on the stack it claims to: the Django that requirements.txt selects for this Python,
the database that DATABASE_URL names and the cache that REDIS_URL names. Without these, a settings slip
would let the PostgreSQL + Redis leg pass on SQLite and local memory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import django
import pytest
from django.core.cache import caches
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def test_django_is_the_one_requirements_select_for_this_python() -> None:
    expected = (6, 1) if sys.version_info >= (3, 12) else (5, 2)
    assert django.VERSION[:2] == expected


@pytest.mark.django_db
def test_database_is_the_one_database_url_names() -> None:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        assert connection.vendor == "postgresql"
    elif not url:
        assert connection.vendor == "sqlite"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_cache_is_the_one_redis_url_names() -> None:
    cache = caches["default"]
    backend = f"{type(cache).__module__}.{type(cache).__name__}"
    if os.environ.get("REDIS_URL"):
        assert backend == "django.core.cache.backends.redis.RedisCache"
        key = f"ci-guard-{uuid.uuid4()}"
        cache.set(key, "round trip", 30)
        assert cache.get(key) == "round trip"
        cache.delete(key)
    else:
        assert backend == "django.core.cache.backends.locmem.LocMemCache"


def test_ci_script_parses() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    script = ROOT / ".ci" / "run"
    result = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
