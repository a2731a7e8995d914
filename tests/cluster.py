"""Several server processes of the demo project sharing one database and one cache, as behind a load
balancer: an ASGI one (uvicorn) and a WSGI one (gunicorn gthread). Built on ``tests/servers.py``.

``embedded_cluster``: one SQLite file and the demo's default file cache beside it (one machine).
``scaleout_cluster``: a fresh PostgreSQL database on the server of ``DATABASE_URL`` (dropped
afterwards) and the Redis of ``REDIS_URL`` (the Django cache and the channels layer).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from psycopg import conninfo, sql

from tests.servers import (
    ROOT,
    LiveServer,
    User,
    free_port,
    log_in,
    prepare_database,
    server_env,
    start_server,
    wait_until_listening,
)

#: Enough threads for gunicorn to stream every reply of the concurrency test at once, with some to
#: spare for stop requests: each open stream holds one (and the relay one more, for the provider).
GUNICORN_THREADS = 40


@dataclass
class Cluster:
    asgi: LiveServer
    wsgi: LiveServer
    env: dict[str, str]
    workdir: Path
    database_url: str | None = None  # PostgreSQL; None for the SQLite file of ``env``
    cookies: dict[str, str] = field(default_factory=dict)  # one login: the session is in the shared database
    extra: list[LiveServer] = field(default_factory=list)

    def client(self, server: LiveServer, timeout: float = 20.0) -> httpx.Client:
        """A logged-in client of ``server``, with the CSRF header; open it in a ``with`` block."""
        return httpx.Client(
            base_url=server.url,
            timeout=timeout,
            cookies=self.cookies,
            headers={"X-CSRFToken": self.cookies["csrftoken"]},
            trust_env=False,
        )

    def start(self, kind: str) -> LiveServer:
        """One more server on the same database and cache; stopped with the cluster."""
        if kind == "gunicorn":
            server = start_gunicorn(self.env, self.workdir)
        else:
            server = start_server(kind, self.env, self.workdir)
        self.extra.append(server)
        return server

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    def query(self, statement: str, params: Any = ()) -> list[tuple[Any, ...]]:
        """Rows from the shared PostgreSQL database (scale-out clusters only)."""
        assert self.database_url is not None
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            cursor = connection.execute(statement, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description is not None else []

    def stop(self) -> None:
        for server in (*self.extra, self.asgi, self.wsgi):
            server.stop()


def gunicorn_command(port: int, threads: int = GUNICORN_THREADS) -> list[str]:
    return [
        *(sys.executable, "-m", "gunicorn", "project.wsgi:application"),
        *("-k", "gthread", "--threads", str(threads), "--workers", "1", "--bind", f"127.0.0.1:{port}"),
        *("--graceful-timeout", "2", "--access-logfile", "-"),
    ]


def start_gunicorn(env: Mapping[str, str], log_dir: Path) -> LiveServer:
    """``start_server("gunicorn", ...)`` with ``GUNICORN_THREADS`` threads instead of its 8."""
    for _attempt in range(3):
        port = free_port()
        log_path = log_dir / f"gunicorn-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                gunicorn_command(port),
                cwd=ROOT,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = LiveServer("gunicorn", port, process, log_path)
        if wait_until_listening(server):
            return server
        server.stop()
        if "address already in use" not in server.log().lower():
            break
    raise RuntimeError(f"gunicorn did not start:\n{server.log()}")


@contextlib.contextmanager
def running_cluster(
    workdir: Path, env: Mapping[str, str], database_url: str | None = None
) -> Iterator[Cluster]:
    """uvicorn and gunicorn on one migrated database (``env``'s), and a session for the first user."""
    full_env = server_env(workdir, env)
    prepare_database(full_env)
    asgi = start_server("uvicorn", full_env, workdir)
    try:
        wsgi = start_gunicorn(full_env, workdir)
    except BaseException:
        asgi.stop()
        raise
    cluster = Cluster(asgi, wsgi, full_env, workdir, database_url)
    try:
        with httpx.Client(base_url=asgi.url, timeout=20, trust_env=False) as browser:
            log_in(browser, User())
            cluster.cookies = dict(browser.cookies.items())
        for server in (asgi, wsgi):
            warm_up(cluster, server)
        yield cluster
    finally:
        cluster.stop()


def warm_up(cluster: Cluster, server: LiveServer) -> None:
    """Stream on ``server`` for a moment, then hang up: its first reply imports the views, and its stop
    poller's first look imports and connects the cache client (``redis``: a few tenths of a second).
    Tests time what a running server does, not its first steps."""
    with (
        cluster.client(server) as client,
        client.stream("POST", "/api/chat", json={"message": "Warm up", "model": "demo:echo"}) as response,
    ):
        response.raise_for_status()
        next(response.iter_raw())
        time.sleep(0.6)  # a few of the stop poller's rounds


# -- a PostgreSQL database of its own ---------------------------------------------------------------


def scaleout_services() -> tuple[str, str] | None:
    """``(DATABASE_URL, REDIS_URL)`` when both are set and the database is PostgreSQL."""
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")) or not redis_url:
        return None
    return database_url, redis_url


def reachable(database_url: str, redis_url: str) -> bool:
    try:
        with psycopg.connect(conninfo.make_conninfo(database_url, dbname="postgres"), connect_timeout=5):
            pass
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except (psycopg.Error, redis.RedisError):
        return False
    return True


@contextlib.contextmanager
def fresh_database(database_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``database_url``, dropped afterwards; yields its URL."""
    base = conninfo.conninfo_to_dict(database_url)
    name = f"{base.get('dbname') or 'streaming'}_scaleout_{uuid.uuid4().hex[:8]}"
    admin = conninfo.make_conninfo(database_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urllib.parse.urlsplit(database_url)
    try:
        yield urllib.parse.urlunsplit(url._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
