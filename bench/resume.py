"""(e) ``resume``: how soon a client that comes back gets its reply again.

A reply of ``resume_tokens`` (one every ``RESUME_DELAY`` s) is read about half-way, the client hangs up,
and at once a new request attaches to it: ``GET /api/messages/<id>/stream`` with the last event id it
had (``Last-Event-ID``), and again from its first chunk (no id: a reload that rebuilds the reply, the AI
SDK's resume). The time from sending that request to the first body byte is measured, ``resume_repeats``
times, for: the in-memory log, the reply read by the process that streams it; and the Redis log, read by
that process and by another (gunicorn beside uvicorn, on one database and one Redis).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.launch import app_env, session_headers
from bench.report import Row, median, percentile
from bench.scenarios import RESUME_DELAY, Sizes
from tests.cluster import start_gunicorn
from tests.servers import LiveServer, prepare_database, server_env, start_server

HALF = 0.5


def ms(seconds: float) -> float:
    return seconds * 1000


@contextlib.contextmanager
def servers(sizes: Sizes, upstream_port: int, redis_url: str | None) -> Iterator[list[LiveServer]]:
    """uvicorn, and with ``redis_url`` gunicorn beside it on the same database and Redis."""
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as workdir:
        env = server_env(Path(workdir), app_env(upstream_port, sizes.models(), redis_url))
        prepare_database(env)
        started = [start_server("uvicorn", env, Path(workdir))]
        try:
            if redis_url:
                started.append(start_gunicorn(env, Path(workdir)))
            yield started
        finally:
            for server in started:
                server.stop()


def half_read(client: httpx.Client, model: str, tokens: int) -> tuple[str, int]:
    """Start a reply and read about half of it: its message id and the last event id read."""
    message_id, last = "", -1
    with client.stream("POST", "/api/chat", json={"message": "Say something.", "model": model}) as response:
        response.raise_for_status()
        buffer, seen = b"", 0
        for data in response.iter_raw():
            buffer += data
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                if event.startswith(b"id: "):
                    last = int(event[4 : event.index(b"\n")])
                if not message_id and b'"messageId":"' in event:
                    start = event.index(b'"messageId":"') + 13
                    message_id = event[start : start + 36].decode()
                seen += event.count(b"tok ")
            if seen >= tokens * HALF:
                return message_id, last
    raise RuntimeError("the reply ended before half of it was read")


def first_byte(client: httpx.Client, message_id: str, last: int | None) -> float:
    headers = {} if last is None else {"Last-Event-ID": str(last)}
    started = time.perf_counter()
    with client.stream("GET", f"/api/messages/{message_id}/stream", headers=headers) as response:
        response.raise_for_status()
        next(response.iter_raw())
        return time.perf_counter() - started


def resume(sizes: Sizes, upstream_port: int, redis_url: str | None) -> list[Row]:
    rows = []
    for log in ("memory", "redis"):
        url = redis_url if log == "redis" else None
        if log == "redis" and not redis_url:
            continue
        with servers(sizes, upstream_port, url) as started:
            rows += measure(sizes, log, started)
    return rows


def measure(sizes: Sizes, log: str, started: list[LiveServer]) -> list[Row]:
    streamer = started[0]
    headers = session_headers(streamer, streamer.users[0])
    model = sizes.model(sizes.resume_tokens, RESUME_DELAY)
    times: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    clients = {
        server.kind: httpx.Client(base_url=server.url, headers=headers, timeout=30) for server in started
    }
    try:
        for _ in range(sizes.resume_repeats):
            message_id, last = half_read(clients["uvicorn"], model, sizes.resume_tokens)
            for server in started:
                for after, how in ((last, "after its last id"), (None, "from the first chunk")):
                    name = f"{log} log, {how}, read through {server.kind}"
                    try:
                        times.setdefault(name, []).append(
                            ms(first_byte(clients[server.kind], message_id, after))
                        )
                    except httpx.HTTPError:
                        errors[name] = errors.get(name, 0) + 1
            clients["uvicorn"].post(f"/api/messages/{message_id}/stop")
    finally:
        for client in clients.values():
            client.close()
    return [
        {
            "name": name,
            "runs": len(values) + errors.get(name, 0),
            "errors": errors.get(name, 0),
            "first_byte_p50_ms": median(values),
            "first_byte_p99_ms": percentile(values, 99),
        }
        for name, values in times.items()
    ]
