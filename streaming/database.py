"""Where the app's database work runs: a few long-lived threads that keep their connections.

A reply touches the database briefly when it starts, at each lease renewal and when it ends, and
streams for minutes in between. Left to Django, that work runs in the request's thread: under ASGI
a new thread per request, so every request opens a connection and closes it again (about 0.7 ms
each way on SQLite, a round trip and a login on PostgreSQL), and a stream must give its connection
up or hold one of the database's few for minutes. Here it runs on ``DATABASE_THREADS`` threads of
the app's own instead. Each keeps its connection between calls, so a process holds at most that many
connections for its replies, whatever the number of open streams, and a call costs one thread hop.

A thread drops its connection after an error that left it unusable, and closes it and ends after
``DATABASE_IDLE_SECONDS`` without work. ``CONN_MAX_AGE`` counts as Django counts it: a connection
older than that is replaced before the next call; with 0 (Django's default: a connection per
request), a thread's "request" is its life, for a new connection per call costs 2.5 (SQLite) to 15
(PostgreSQL) times the call itself (``python -m bench.database``, docs/benchmarks.md). With
PostgreSQL's pool (``OPTIONS["pool"]``), each call gives its connection back to the pool.

Work asked for inside a transaction of the calling thread (a ``TestCase``, ``ATOMIC_REQUESTS``) runs in
that thread instead, inside that transaction: another thread could not see its rows. So does work
asked for on a database thread itself: queued, it could wait for a thread that never comes free.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connection, connections, transaction

from streaming.conf import app_settings

T = TypeVar("T")
Work = tuple[Future[Any], contextvars.Context, Callable[[], Any]]


def in_transaction() -> bool:
    """Whether this thread has a transaction open on any database (its work must stay here)."""
    return any(c.in_atomic_block for c in connections.all(initialized_only=True))


class DatabaseThreads:
    """A pool of threads for database work whose connections outlive each call."""

    def __init__(self) -> None:
        self._work: queue.SimpleQueue[Work | None] = queue.SimpleQueue()  # None: a thread should end
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._idle = 0  # threads waiting for work
        self._pending = 0  # work not taken yet

    def submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            self._work.put((future, contextvars.copy_context(), call))
            self._pending += 1
            if self._pending > self._idle and len(self._threads) < app_settings.database_threads:
                thread = threading.Thread(target=self._serve, name="streaming-db", daemon=True)
                self._threads.add(thread)
                self._idle += 1
                thread.start()
        return future

    def stop(self, timeout: float = 5.0) -> None:
        """End every thread once the work before this call is done; each closes its connections."""
        with self._lock:
            threads = list(self._threads)
            for _ in threads:
                self._work.put(None)
                self._pending += 1
        for thread in threads:
            thread.join(timeout)

    def _serve(self) -> None:
        _here.serving = True
        try:
            while self._take_and_run():
                pass
        finally:
            connections.close_all()

    def _take_and_run(self) -> bool:
        """Run the next call; False when told to end or when none came for ``DATABASE_IDLE_SECONDS``."""
        try:
            work = self._work.get(timeout=app_settings.database_idle_seconds)
        except queue.Empty:
            with self._lock:
                if self._pending:  # work arrived as the wait ended: this thread was counted on
                    return True
                return self._leave()
        with self._lock:
            self._pending -= 1
            if work is None:
                return self._leave()
            self._idle -= 1
        future, context, call = work
        try:
            if future.set_running_or_notify_cancel():
                _run(future, context, call)
        finally:
            with self._lock:
                self._idle += 1
        return True

    def _leave(self) -> bool:
        # (under the lock, so that a submit never counts on a thread that is ending)
        self._threads.discard(threading.current_thread())
        self._idle -= 1
        return False


def _run(future: Future[T], context: contextvars.Context, call: Callable[[], T]) -> None:
    for held in connections.all(initialized_only=True):
        held.close_if_unusable_or_obsolete()  # after an error: a connection that still works is kept
    try:
        result = context.run(call)
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)
    finally:
        for held in connections.all(initialized_only=True):
            # Only a request's end clears DEBUG's query log (``reset_queries``); this thread has none.
            held.queries_log.clear()
            if held.settings_dict.get("OPTIONS", {}).get("pool"):
                held.close()  # back to the pool, for the process's other threads
            elif held.settings_dict["CONN_MAX_AGE"] == 0:
                held.close_at = None  # kept for the thread's life (see above)


threads = DatabaseThreads()
_here = threading.local()  # ``serving``: this thread is one of the database threads


def on_database_thread() -> bool:
    return getattr(_here, "serving", False)


def run(call: Callable[[], T]) -> T:
    """``call()`` on a database thread, waiting for it; here, when this thread is in a transaction or is
    a database thread."""
    return start(call).result()


def start(call: Callable[[], T]) -> Future[T]:
    """``call()`` on a database thread, without waiting for it; here and now, when this thread is in a
    transaction (whose rows another thread could not see) or is a database thread itself."""
    if not (in_transaction() or on_database_thread()):
        return threads.submit(call)
    future: Future[T] = Future()
    try:
        future.set_result(call())
    except Exception as exc:
        future.set_exception(exc)
    return future


async def arun(call: Callable[[], T], *, here: bool = False) -> T:
    """``call()`` on a database thread, from async code.

    ``here``: where Django would run it instead (``sync_to_async``, thread-sensitive), for work that
    belongs to a transaction of the thread that started it (see ``run``).
    """
    if here:
        return await sync_to_async(call)()
    return await asyncio.wrap_future(threads.submit(call))


_sqlite_writes = threading.RLock()


@contextlib.contextmanager
def write_transaction() -> Iterator[None]:
    """``transaction.atomic()`` for a reply's writes; on SQLite, one at a time in this process.

    SQLite has one writer at a time, and a connection that finds the database locked sleeps and
    retries (longer and longer, up to its ``timeout``): a thousand replies starting at once under
    ASGI (a thread each) then crawl, and some fail with "database is locked". Waiting on a lock
    here instead hands the database to the next writer as soon as it is free.
    """
    if connection.vendor != "sqlite":
        with transaction.atomic():
            yield
        return
    with _sqlite_writes, transaction.atomic():
        yield
