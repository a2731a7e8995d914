"""Run the demo project under a real server in a subprocess, and read its event streams.

``running_server(kind, workdir)`` migrates a fresh SQLite file (or the database of a ``DATABASE_URL``
given in ``env``), creates a user, starts the server on 127.0.0.1 with a port the OS chose, waits
until it accepts connections, and stops its whole process group afterwards. ``server.client()`` logs
in over HTTP like a browser and returns an ``httpx.Client`` that sends the CSRF header.

Kinds, each under the current interpreter (``sys.executable -m ...``):

- ``runserver``: ``manage.py runserver`` served by daphne (ASGI), first in the demo's INSTALLED_APPS;
- ``runserver-wsgi``: ``manage.py runserver --noasgi`` (Django's threaded WSGI server);
- ``gunicorn``: ``gunicorn project.wsgi:application -k gthread --threads 8`` (WSGI);
- ``uvicorn``: ``uvicorn project.asgi:application`` (ASGI);
- ``daphne``: ``daphne project.asgi:application`` (ASGI; for the benchmarks, not in ``KINDS``).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import importlib.util
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
ASGI_KINDS = ("runserver", "uvicorn", "daphne")
WSGI_KINDS = ("runserver-wsgi", "gunicorn")
KINDS = ("runserver", "runserver-wsgi", "gunicorn", "uvicorn")
#: The module each kind needs besides Django: what ``require()`` checks before starting it.
NEEDS = {
    "runserver": "daphne",
    "runserver-wsgi": "django",
    "gunicorn": "gunicorn",
    "uvicorn": "uvicorn",
    "daphne": "daphne",
}
#: What the outer environment must not leak into a server: the test run's settings (every ``DJANGO_*``
#: and ``STREAMING_*`` variable), provider keys (the demo provider is enough), and the scale-out
#: services unless asked for.
SCRUBBED_PREFIXES = ("DJANGO_", "STREAMING_")
SCRUBBED = (
    "DATABASE_URL",
    "REDIS_URL",
    "SQLITE_PATH",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
)
START_TIMEOUT = 30.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class User:
    """A user to create in a server's database; ``staff`` makes a superuser, for the admin's pages."""

    username: str = "alice"
    password: str = "alice-servers-pw-4821"
    staff: bool = False


DEFAULT_USERS = (User(),)

SETUP_SCRIPT = """
import json, sys
import django
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
for entry in json.loads(sys.argv[1]):
    user, _ = get_user_model().objects.get_or_create(username=entry["username"])
    user.set_password(entry["password"])
    user.is_staff = user.is_superuser = entry["staff"]
    user.save()
"""


def available(kind: str) -> bool:
    """Whether this machine can run ``kind`` (gunicorn, for one, does not run on Windows)."""
    if kind == "gunicorn" and sys.platform == "win32":
        return False
    return importlib.util.find_spec(NEEDS[kind]) is not None


def outer_env() -> dict[str, str]:
    """This process's environment without what must not leak into a server (``SCRUBBED``)."""
    return {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith(SCRUBBED_PREFIXES)}


def server_env(workdir: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a server: the demo project's settings and a SQLite file of its own.

    ``env`` adds to it: ``DATABASE_URL`` and ``REDIS_URL`` for a scale-out run (several servers may
    share one such environment), ``STREAMING_DEMO_TOKENS_PER_SECOND`` and the like.
    """
    merged = outer_env()
    merged.update(
        DJANGO_SETTINGS_MODULE="project.settings",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(ROOT),
        SQLITE_PATH=str(workdir / "db.sqlite3"),
        # Tests stream many replies at once as one user: a test of the per-user limits sets its own.
        STREAMING_MAX_CONCURRENT_REPLIES="none",
        STREAMING_REPLIES_PER_MINUTE="none",
    )
    merged.update(env or {})
    return merged


def prepare_database(env: Mapping[str, str], users: Sequence[User] = DEFAULT_USERS) -> None:
    """Migrate the database of ``env`` (its ``DATABASE_URL``, or else its SQLite file) and add the users.

    A SQLite file is a copy of one migrated once per test run for these users: migrating takes longer
    than starting a server.
    """
    if env.get("DATABASE_URL"):
        run_setup(env, users)
        return
    key = tuple(users)
    if key not in _sqlite_templates:
        template = Path(_template_dir().name) / f"template-{len(_sqlite_templates)}.sqlite3"
        run_setup({**env, "SQLITE_PATH": str(template)}, users)
        _sqlite_templates[key] = template
    with (
        contextlib.closing(sqlite3.connect(_sqlite_templates[key])) as source,
        contextlib.closing(sqlite3.connect(env["SQLITE_PATH"])) as target,
    ):
        source.backup(target)


_sqlite_templates: dict[tuple[User, ...], Path] = {}


@functools.cache
def _template_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="streaming-servers-")


def run_setup(env: Mapping[str, str], users: Sequence[User]) -> None:
    """``migrate`` and the users, in a subprocess with the server's environment."""
    payload = orjson.dumps([dataclasses.asdict(u) for u in users]).decode()
    done = subprocess.run(
        [sys.executable, "-c", SETUP_SCRIPT, payload],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrating the server's database failed:\n{done.stdout}\n{done.stderr}")


def free_port() -> int:
    """A port the OS considers free now. The server binds it a moment later; ``start_server`` retries
    with another port in the rare case that something else took it in between."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(kind: str, port: int) -> list[str]:
    address = f"127.0.0.1:{port}"
    if kind == "runserver":
        return [sys.executable, "manage.py", "runserver", "--noreload", address]
    if kind == "runserver-wsgi":
        return [sys.executable, "manage.py", "runserver", "--noreload", "--noasgi", address]
    if kind == "gunicorn":
        return [
            *(sys.executable, "-m", "gunicorn", "project.wsgi:application"),
            *("-k", "gthread", "--threads", "8", "--workers", "1", "--bind", address),
            *("--graceful-timeout", "2", "--access-logfile", "-"),
        ]
    if kind == "uvicorn":
        return [
            *(sys.executable, "-m", "uvicorn", "project.asgi:application"),
            *("--host", "127.0.0.1", "--port", str(port), "--lifespan", "off"),
            *("--timeout-graceful-shutdown", "2"),
        ]
    if kind == "daphne":
        return [
            *(sys.executable, "-m", "daphne", "project.asgi:application"),
            *("-b", "127.0.0.1", "-p", str(port)),
        ]
    raise ValueError(f"unknown server kind {kind!r}; one of {KINDS}")


@dataclass
class LiveServer:
    """A server process serving the demo project on ``url``."""

    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    users: Sequence[User] = DEFAULT_USERS

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def asgi(self) -> bool:
        return self.kind in ASGI_KINDS

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, user: User | None = None, timeout: float = 10.0) -> httpx.Client:
        """A client logged in as ``user`` (the first user by default) that sends the CSRF header.

        The client is not opened yet, so that it can be used in a ``with`` block.
        """
        with httpx.Client(base_url=self.url, timeout=timeout) as browser:
            log_in(browser, user or self.users[0])
            cookies = httpx.Cookies(browser.cookies)
        return httpx.Client(
            base_url=self.url,
            timeout=timeout,
            cookies=cookies,
            headers={"X-CSRFToken": cookies["csrftoken"]},
        )

    @contextlib.contextmanager
    def log_on_failure(self) -> Iterator[None]:
        """Attach the server's output to any failure raised inside the block."""
        try:
            yield
        except Exception as exc:
            exc.add_note(
                f"--- output of the {self.kind} server on port {self.port} ---\n{self.log()[-6000:]}"
            )
            raise

    def stop(self) -> None:
        """Stop the server and everything it started (gunicorn's workers): its whole process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)


def start_server(
    kind: str,
    env: Mapping[str, str],
    log_dir: Path,
    users: Sequence[User] = DEFAULT_USERS,
    *,
    command: Callable[[int], Sequence[str | Path]] | None = None,
    cwd: Path = ROOT,
) -> LiveServer:
    """Start ``kind`` on a free port and wait until it accepts connections; the caller stops it.

    ``command(port)`` and ``cwd`` serve another project than the demo (``kind`` then names the sort
    of server it is: its interface).
    """
    for _attempt in range(3):
        port = free_port()
        log_path = log_dir / f"{kind}-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                (command or functools.partial(server_command, kind))(port),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so that stop() reaches every child
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )
        server = LiveServer(kind, port, process, log_path, users)
        if wait_until_listening(server):
            return server
        server.stop()
        if "address already in use" not in server.log().lower():
            break
    raise RuntimeError(f"the {kind} server did not start:\n{server.log()}")


def die_with_parent() -> None:
    """In the server, before it starts: SIGTERM when the test process dies, even of a SIGKILL, so
    that no server outlives an interrupted test run."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_until_listening(server: LiveServer, timeout: float = START_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@contextlib.contextmanager
def running_server(
    kind: str,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    users: Sequence[User] = DEFAULT_USERS,
) -> Iterator[LiveServer]:
    """A migrated database with ``users``, and ``kind`` serving it until the block ends."""
    full_env = server_env(workdir, env)
    prepare_database(full_env, users)
    server = start_server(kind, full_env, workdir, users)
    try:
        yield server
    finally:
        server.stop()


def log_in(client: httpx.Client, user: User) -> None:
    """Log in through the login form, as a browser does: the session and CSRF cookies land in ``client``."""
    page = client.get("/accounts/login/")
    page.raise_for_status()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if token is None:
        raise RuntimeError(f"no CSRF token in the login page:\n{page.text[:2000]}")
    form = {"username": user.username, "password": user.password, "csrfmiddlewaretoken": token[1]}
    done = client.post("/accounts/login/", data=form)
    if done.status_code != 302:
        raise RuntimeError(f"logging in as {user.username} failed with {done.status_code}")


# -- reading an event stream as it arrives -----------------------------------------------------------


@dataclass
class Received:
    """One SSE event and when it arrived."""

    at: float  # seconds since the request was sent
    read: int  # the number of the network read that completed it
    event: Any  # a JSON chunk (a dict), "[DONE]", or "ping" for a ": ping" comment
    id: int | None = None

    @property
    def type(self) -> str:
        return str(self.event["type"]) if isinstance(self.event, dict) else str(self.event)


@dataclass
class EventParser:
    """Splits bytes, fed as they arrive, into complete events."""

    buffer: bytes = b""

    def feed(self, data: bytes) -> list[tuple[int | None, Any]]:
        self.buffer += data
        *blocks, self.buffer = self.buffer.split(b"\n\n")
        return [parse_block(block) for block in blocks if block.strip()]


def parse_block(block: bytes) -> tuple[int | None, Any]:
    lines = block.decode().split("\n")
    if all(line.startswith(":") for line in lines):
        return None, "ping"
    event_id = next((int(line[3:]) for line in lines if line.startswith("id: ")), None)
    data = "\n".join(line[5:].removeprefix(" ") for line in lines if line.startswith("data:"))
    return event_id, data if data == "[DONE]" else orjson.loads(data)


def stream_events(response: httpx.Response, started: float) -> Iterator[Received]:
    """The events of a streaming ``response`` as they arrive, timed from ``started`` (monotonic)."""
    parser = EventParser()
    for read, data in enumerate(response.iter_raw(), start=1):
        at = time.monotonic() - started
        for event_id, event in parser.feed(data):
            yield Received(at, read, event, event_id)
