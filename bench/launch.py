"""Start what the benchmarks measure, each in its own process group, and stop it afterwards.

* ``upstream()``: ``python -m bench.upstream`` on a free port.
* ``app_server(kind, ...)``: the demo project under ``kind`` (``uvicorn``, ``daphne``, ``gunicorn``)
  through ``tests.servers.running_server`` (a fresh SQLite database with user alice), with
  ``DJANGO_DEBUG`` off, the OpenAI provider pointed at the upstream, heartbeats every 60 s; the
  returned ``Target`` carries alice's session and CSRF cookies and the ``X-CSRFToken`` header.
* ``fastapi_server(...)``: ``bench.fastapi_proxy`` under one uvicorn worker.
* ``redis_server()``: a Redis of the benchmark's own (for the runs with the Redis reply log).

Servers inherit this process's limits: call ``raise_fd_limit`` first.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.client import Target
from tests.servers import (
    ROOT,
    LiveServer,
    User,
    die_with_parent,
    free_port,
    outer_env,
    running_server,
    wait_until_listening,
)

APP_KINDS = ("uvicorn", "daphne", "gunicorn")


@dataclass
class Upstream:
    port: int
    process: subprocess.Popen[str]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@contextlib.contextmanager
def upstream() -> Iterator[Upstream]:
    """The fake upstream in its own process, until the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.upstream", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the upstream did not start: {line!r}")
        yield Upstream(int(line.rsplit(":", 1)[1]), process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def app_env(upstream_port: int, models: Sequence[str], redis_url: str | None = None) -> dict[str, str]:
    """The demo project's environment; with ``redis_url``, Redis for its cache, channels and reply log."""
    env = {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-only-not-secret-" + "x" * 40,
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{upstream_port}/v1",
        "STREAMING_MODELS": ",".join(models),
        "STREAMING_HEARTBEAT_SECONDS": "60",
        # The load scenarios stream up to 1,000 replies at once as one user.
        "STREAMING_MAX_CONCURRENT_REPLIES": "none",
        "STREAMING_REPLIES_PER_MINUTE": "none",
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def session_headers(server: LiveServer, user: User) -> dict[str, str]:
    """Log ``user`` in through the login form; the headers that carry the session.

    With DEBUG off the cookies are ``Secure``, which a cookie jar keeps off plain HTTP: they are passed
    by hand here (the server is local), as ``tests.servers.log_in`` does through its jar with DEBUG on.
    """
    with httpx.Client(base_url=server.url, timeout=10) as browser:
        page = browser.get("/accounts/login/")
        page.raise_for_status()
        cookies = dict(page.cookies)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        if token is None:
            raise RuntimeError(f"no CSRF token in the login page:\n{page.text[:2000]}")
        form = {"username": user.username, "password": user.password, "csrfmiddlewaretoken": token[1]}
        done = browser.post("/accounts/login/", data=form, headers={"Cookie": cookie_header(cookies)})
        if done.status_code != 302:
            raise RuntimeError(f"logging in as {user.username} failed with {done.status_code}")
        cookies.update(done.cookies)
    return {"Cookie": cookie_header(cookies), "X-CSRFToken": cookies["csrftoken"], "Origin": server.url}


def cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


@contextlib.contextmanager
def app_server(
    kind: str, upstream_port: int, models: Sequence[str], redis_url: str | None = None
) -> Iterator[tuple[LiveServer, Target]]:
    """The demo project under ``kind``; the target is ``POST /api/chat`` as alice."""
    with (
        tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as workdir,
        running_server(kind, Path(workdir), app_env(upstream_port, models, redis_url)) as server,
        server.log_on_failure(),
    ):
        headers = session_headers(server, server.users[0])
        yield server, Target(server.port, "/api/chat", headers)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A Redis of the benchmark's own, on a spare port, keeping nothing on disk: its URL."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.05)
        yield url
    finally:
        process.kill()
        process.wait(timeout=5)


@contextlib.contextmanager
def fastapi_server(upstream_port: int) -> Iterator[tuple[LiveServer, Target]]:
    """``bench.fastapi_proxy`` under one uvicorn worker."""
    env = {
        **outer_env(),
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{upstream_port}/v1",
        "PYTHONPATH": str(ROOT),
    }
    with tempfile.TemporaryDirectory(prefix="bench-fastapi-") as workdir:
        port = free_port()
        log_path = Path(workdir) / "fastapi.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "uvicorn", "bench.fastapi_proxy:app"),
                    *("--host", "127.0.0.1", "--port", str(port), "--lifespan", "off"),
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        server = LiveServer("fastapi", port, process, log_path)
        try:
            if not wait_until_listening(server):
                raise RuntimeError(f"the FastAPI proxy did not start:\n{server.log()}")
            with server.log_on_failure():
                yield server, Target(port, "/api/chat")
        finally:
            server.stop()
