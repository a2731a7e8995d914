"""Requests at the same moment: threads released together, each on a database connection of its own, as
a server's threads would be."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connection

T = TypeVar("T")


def at_once(count: int, call: Callable[[], T]) -> tuple[list[T], list[BaseException]]:
    """``call()`` on ``count`` threads at once: what the calls returned, and what they raised."""
    returned: list[T] = []
    raised: list[BaseException] = []
    ready = threading.Barrier(count)

    def run() -> None:
        try:
            ready.wait(10)
            returned.append(call())
        except BaseException as exc:
            raised.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return returned, raised
