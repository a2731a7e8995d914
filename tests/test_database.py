"""The app's database threads: calls run there with a kept connection, a bounded number at once, and
stay in the caller's thread inside its transaction."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.db.backends.signals import connection_created
from django.test import override_settings

from streaming import database
from streaming.conf import app_settings


def where() -> tuple[str, int]:
    """The thread a call ran on, and its connection's identity (it opens one if needed)."""
    get_user_model().objects.exists()
    return threading.current_thread().name, id(connection.connection)


@pytest.mark.django_db(transaction=True)
def test_calls_run_on_a_database_thread_that_keeps_its_connection() -> None:
    opened: list[Any] = []

    def count(sender: Any, connection: Any, **kwargs: Any) -> None:
        opened.append(connection)

    connection_created.connect(count)
    try:
        first = database.run(where)
        second = database.run(where)
    finally:
        connection_created.disconnect(count)
    assert first[0] == "streaming-db"
    assert first == second  # the same thread, and the same connection: not reopened
    assert len(opened) == 1


@pytest.mark.django_db
def test_inside_a_transaction_a_call_runs_here() -> None:
    """A TestCase's transaction holds the rows a call must see: another thread could not."""
    user = get_user_model().objects.create_user("carol")
    found = database.run(
        lambda: (threading.current_thread().name, get_user_model().objects.filter(pk=user.pk).exists())
    )
    assert found == (threading.current_thread().name, True)


@pytest.mark.django_db(transaction=True)
@override_settings(STREAMING={"DATABASE_THREADS": 2})
def test_no_more_than_database_threads_run_at_once() -> None:
    running, peak, lock = 0, 0, threading.Lock()
    release = threading.Event()

    def busy() -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(5)
        with lock:
            running -= 1
        return threading.current_thread().name

    futures = [database.threads.submit(busy) for _ in range(6)]
    time.sleep(0.2)
    assert peak == 2  # the other four wait their turn
    release.set()
    assert {f.result(timeout=5) for f in futures} == {"streaming-db"}
    assert peak == 2


@pytest.mark.django_db(transaction=True)
def test_an_idle_thread_closes_its_connection_and_ends() -> None:
    with override_settings(STREAMING={"DATABASE_IDLE_SECONDS": 0.2}):
        held: list[Any] = []
        database.run(lambda: held.append((where(), connections["default"])))
        thread = next(t for t in threading.enumerate() if t.name == "streaming-db")
        thread.join(timeout=3)
        assert not thread.is_alive()
        wrapper = held[0][1]
        if not (wrapper.vendor == "sqlite" and wrapper.is_in_memory_db()):  # (Django never closes those)
            assert wrapper.connection is None  # closed by its thread as it ended
        assert database.run(where)[0] == "streaming-db"  # and a new one starts for the next call


@pytest.mark.django_db(transaction=True)
def test_errors_reach_the_caller() -> None:
    def fail() -> None:
        raise LookupError("nope")

    with pytest.raises(LookupError, match="nope"):
        database.run(fail)
    assert database.run(where)[0] == "streaming-db"  # the thread lives on


@pytest.mark.django_db(transaction=True)
def test_async_callers_wait_without_blocking_the_loop() -> None:
    async def main() -> list[str]:
        ticks: list[str] = []

        async def tick() -> None:
            for _ in range(3):
                ticks.append("tick")
                await asyncio.sleep(0.02)

        def slow() -> str:
            time.sleep(0.1)
            return "done"

        result, _ = await asyncio.gather(database.arun(slow), tick())
        return [*ticks, result]

    assert asyncio.run(main()) == ["tick", "tick", "tick", "done"]


@pytest.mark.django_db(transaction=True)
def test_a_call_cancelled_before_it_starts_never_runs() -> None:
    ran: list[str] = []
    release = threading.Event()

    async def main() -> None:
        blockers = [
            database.threads.submit(lambda: release.wait(5)) for _ in range(app_settings.database_threads)
        ]
        waiting = asyncio.ensure_future(database.arun(lambda: ran.append("ran")))
        await asyncio.sleep(0.05)
        waiting.cancel()
        await asyncio.sleep(0)
        release.set()
        for blocker in blockers:
            await asyncio.wrap_future(blocker)

    asyncio.run(main())
    database.threads.stop()
    assert ran == []


@pytest.mark.django_db(transaction=True)
def test_stop_ends_every_thread() -> None:
    database.run(where)
    database.threads.stop()
    assert not [t for t in threading.enumerate() if t.name == "streaming-db"]


@pytest.mark.django_db(transaction=True)
@override_settings(DEBUG=True, STREAMING={"DATABASE_THREADS": 1})
def test_with_debug_on_a_thread_keeps_no_query_log() -> None:
    """Django logs every query of a connection while DEBUG is on, and only a request's end clears the
    log: a database thread, which outlives requests, would keep it forever."""
    for _ in range(5):
        database.run(lambda: get_user_model().objects.exists())
    assert database.run(lambda: len(connection.queries_log)) == 0


@pytest.mark.django_db(transaction=True)
@override_settings(STREAMING={"DATABASE_THREADS": 2})
def test_a_call_that_runs_another_does_not_wait_for_a_free_thread() -> None:
    """Every database thread busy with a call that calls ``run()`` again: the inner call runs where it
    is, on the thread that asked for it (queued, it would wait for a thread that never comes free)."""
    both = threading.Barrier(2, timeout=5)

    def outer() -> tuple[str, str]:
        both.wait()  # every thread is busy now
        inner = database.run(lambda: threading.current_thread().name)
        return threading.current_thread().name, inner

    futures = [database.threads.submit(outer) for _ in range(2)]
    results = [future.result(timeout=5) for future in futures]
    assert all(name == inner for name, inner in results)


@pytest.mark.django_db(transaction=True)
def test_conn_max_age_is_honoured() -> None:
    """A connection older than ``CONN_MAX_AGE`` is replaced before the next call, as Django does at
    each request; with 0 (Django's default), a thread keeps its connection for its life."""
    database.threads.stop()
    settings_dict = connections["default"].settings_dict
    opened: list[Any] = []

    def count(sender: Any, connection: Any, **kwargs: Any) -> None:
        opened.append(connection)

    connection_created.connect(count)
    try:
        settings_dict["CONN_MAX_AGE"] = 0.2
        database.run(where)
        database.run(where)
        assert len(opened) == 1
        time.sleep(0.5)  # (well past the age)
        database.run(where)
        assert len(opened) == 2
    finally:
        connection_created.disconnect(count)
        settings_dict["CONN_MAX_AGE"] = 0
        database.threads.stop()
