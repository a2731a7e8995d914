"""Where the API's database work should run: the app's own threads (``streaming.database``) against a
``concurrent.futures.ThreadPoolExecutor`` with Django's own connection handling, on SQLite and, with
``DATABASE_URL``, on PostgreSQL (its connection pool of Django 5.1+ too, ``OPTIONS["pool"]``).

``python -m bench.database [--calls N] [--callers N]`` prints one row per way: the time of one call
made alone (a one-row ``SELECT``, waited for, as a request does), the calls per second of many callers
at once (async tasks, as ASGI requests), and the connections opened. The executor's calls run as a
request does: ``close_old_connections()`` before and after, so that ``CONN_MAX_AGE`` decides whether a
connection is kept. Each way runs in a process of its own, with a fresh database.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import orjson

WAYS = ["app threads", "executor, CONN_MAX_AGE=0", "executor, CONN_MAX_AGE=60", "executor, pool"]
THREADS = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--way", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.way:
        print(orjson.dumps(measure(args.way, args.url, args.calls, args.callers)).decode())
        return
    databases = [("SQLite", "")]
    if os.environ.get("DATABASE_URL"):
        databases.append(("PostgreSQL", os.environ["DATABASE_URL"]))
    print(f"{'database':<11} {'way':<27} {'one call µs':>12} {'calls/s':>9} {'connections':>12}")
    for label, url in databases:
        for way in WAYS:
            if way.endswith("pool") and not (url and importlib.util.find_spec("psycopg_pool")):
                continue  # (a pool is PostgreSQL's only, with psycopg's pool package)
            row = run_way(way, url, args.calls, args.callers)
            numbers = f"{row['one_call_us']:>12.0f} {row['per_second']:>9.0f} {row['opened']:>12}"
            print(f"{label:<11} {way:<27} {numbers}")


def run_way(way: str, url: str, calls: int, callers: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.database", "--way", way, "--url", url]
    command += ["--calls", str(calls), "--callers", str(callers)]
    root = Path(__file__).parent.parent
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=root)
    row: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    return row


def measure(way: str, url: str, calls: int, callers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-database-") as workdir:
        os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        os.environ["SQLITE_PATH"] = str(Path(workdir) / "db.sqlite3")
        os.environ.pop("DATABASE_URL", None)
        if url:
            os.environ["DATABASE_URL"] = url
        import django
        from django.conf import settings

        settings_database = _database(way, url)
        django.setup()
        default = cast(dict[str, Any], settings.DATABASES["default"])
        default.update(settings_database)
        return _measure(way, calls, callers)


def _database(way: str, url: str) -> dict[str, Any]:
    if way.endswith("CONN_MAX_AGE=60"):
        return {"CONN_MAX_AGE": 60}
    if way.endswith("pool"):
        return {"CONN_MAX_AGE": 0, "OPTIONS": {"pool": {"min_size": THREADS, "max_size": THREADS}}}
    return {"CONN_MAX_AGE": 0}


def _measure(way: str, calls: int, callers: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db.backends.signals import connection_created

    call_command("migrate", interactive=False, verbosity=0)
    user, _ = get_user_model().objects.get_or_create(username="bench")
    opened: list[Any] = []
    connection_created.connect(lambda **kwargs: opened.append(1), weak=False)
    submit = _submitter(way)

    def query() -> bool:
        return bool(get_user_model().objects.filter(pk=user.pk).exists())

    for _ in range(20):  # warm up: threads started, connections opened
        submit(query).result()
    opened.clear()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        submit(query).result()
        times.append(time.perf_counter() - started)

    async def many() -> float:
        started = time.perf_counter()

        async def caller() -> None:
            for _ in range(calls // callers):
                await asyncio.wrap_future(submit(query))

        await asyncio.gather(*(caller() for _ in range(callers)))
        return (calls // callers) * callers / (time.perf_counter() - started)

    per_second = asyncio.run(many())
    return {"one_call_us": statistics.median(times) * 1e6, "per_second": per_second, "opened": len(opened)}


def _submitter(way: str) -> Callable[[Callable[[], Any]], Future[Any]]:
    if way == "app threads":
        from django.test import override_settings

        from streaming import database

        override_settings(STREAMING={"DATABASE_THREADS": THREADS}).enable()
        return database.threads.submit
    from django.db import close_old_connections

    executor = ThreadPoolExecutor(THREADS, thread_name_prefix="bench-db")

    def as_a_request(call: Callable[[], Any]) -> Any:
        close_old_connections()
        try:
            return call()
        finally:
            close_old_connections()

    return lambda call: executor.submit(as_a_request, call)


if __name__ == "__main__":
    main()
