"""Count the SQL a block runs on every thread: the app's database threads (``streaming.database``) run
most of a reply's queries, out of reach of Django's ``CaptureQueriesContext`` (one connection's)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connections
from django.db.backends.signals import connection_created

from streaming import database, upkeep

# Transaction control: SQLite's backend sends BEGIN as a statement, PostgreSQL's driver opens a transaction
# without one, so the same reply runs 9 statements on one and 7 on the other. Tests count the work.
TRANSACTION_CONTROL = frozenset({"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"})


class Queries(list[str]):
    """The statements run, in order; ``kinds()`` counts them by their first word."""

    def work(self) -> Queries:
        """The statements that read or write rows: all but transaction control, whatever the database."""
        return Queries(sql for sql in self if sql.split(" ", 1)[0].upper() not in TRANSACTION_CONTROL)

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for sql in self:
            kind = sql.split(" ", 1)[0].upper()
            counts[kind] = counts.get(kind, 0) + 1
        return counts


@contextlib.contextmanager
def all_queries() -> Iterator[Queries]:
    """The queries of every connection opened in the block, and of this thread's own.

    The database threads are ended first, so that each opens, and so reports, a connection of its own.
    """
    database.threads.stop()
    found = Queries()
    lock = threading.Lock()

    def record(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if not upkeep.in_upkeep.get():  # (the process's lease renewals and takeovers: no reply's)
            with lock:
                found.append(sql)
        return execute(sql, params, many, context)

    def wrap(sender: Any, connection: Any, **kwargs: Any) -> None:
        if record not in connection.execute_wrappers:
            connection.execute_wrappers.append(record)

    here = [connections[alias] for alias in connections]
    for held in here:
        wrap(None, held)
    connection_created.connect(wrap)
    try:
        yield found
    finally:
        connection_created.disconnect(wrap)
        database.threads.stop()  # (their connections, and so the wrapper, go with them)
        for held in here:
            with contextlib.suppress(ValueError):
                held.execute_wrappers.remove(record)
