"""One thread per process that runs what is due later: every reply's timeouts and grace periods, and
the periodic upkeep (leases, takeovers).

A reply's deadline moves with every token (the idle timeout counts from the last one); rather than
move a timer per token, a reply sets one and, when it rings early, sets it again for the deadline
as it is then. So a thousand streaming replies cost a few wake-ups a second, not one per token.
Callbacks run on this thread and must be quick: database work goes to ``streaming.database``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Timers:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], object]]] = []
        self._order = itertools.count()  # ties ring in the order they were set
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def at(self, when: float, callback: Callable[[], object]) -> None:
        """Call ``callback`` on the timers' thread at ``when`` (``time.monotonic()``), or soon after."""
        with self._changed:
            heapq.heappush(self._heap, (when, next(self._order), callback))
            if self._heap[0][2] is callback:
                self._changed.notify()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="streaming-timers", daemon=True)
                self._thread.start()

    def after(self, seconds: float, callback: Callable[[], object]) -> None:
        self.at(time.monotonic() + seconds, callback)

    def _run(self) -> None:
        while True:
            with self._changed:
                while True:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        _, _, callback = heapq.heappop(self._heap)
                        break
                    self._changed.wait(self._heap[0][0] - now if self._heap else None)
            try:
                callback()
            except Exception:
                logger.exception("streaming: a timer's callback failed")


timers = Timers()
