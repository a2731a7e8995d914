"""Stop a streaming reply from any tab or server process.

``request_stop`` writes a flag in the Django cache and wakes the reply at once when it streams in
this process. Each process also polls the cache for the replies it is streaming, with one
``get_many`` every ``STOP_POLL_SECONDS`` whatever their number, so a stop reaches a reply streamed
by another process when the cache is shared between processes (Redis, Memcached, database or file
cache). With the local-memory cache a stop reaches only replies of the same process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.core.cache import caches

from streaming.conf import app_settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "streaming:stop:"
FLAG_SECONDS = 3600


def _cache():  # type: ignore[no-untyped-def]
    return caches[app_settings.cache_alias]


class StopWatcher:
    """The replies streaming in this process, and the thread that polls for their stop flags."""

    def __init__(self) -> None:
        self._callbacks: dict[str, Callable[[], object]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, message_id: str, on_stop: Callable[[], object]) -> None:
        with self._lock:
            self._callbacks[message_id] = on_stop
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._poll, name="streaming-stop-watcher", daemon=True)
                self._thread.start()

    def forget(self, message_id: str) -> None:
        with self._lock:
            self._callbacks.pop(message_id, None)

    def notify(self, message_id: str) -> bool:
        with self._lock:
            callback = self._callbacks.pop(message_id, None)
        if callback is None:
            return False
        callback()
        return True

    def _poll(self) -> None:
        idle_since = time.monotonic()
        while True:
            time.sleep(app_settings.stop_poll_seconds)
            with self._lock:
                ids = list(self._callbacks)
            if not ids:
                if time.monotonic() - idle_since > 30:
                    with self._lock:
                        if not self._callbacks:
                            self._thread = None
                            return
                continue
            idle_since = time.monotonic()
            try:
                flagged = _cache().get_many([KEY_PREFIX + message_id for message_id in ids])
            except Exception:  # a cache outage must not kill the watcher; stops wait for it to return
                logger.exception("streaming: could not read stop flags from the cache")
                continue
            for key in flagged:
                self.notify(key.removeprefix(KEY_PREFIX))


watcher = StopWatcher()


def request_stop(message_id: str) -> None:
    """Ask the reply ``message_id`` to stop, wherever it streams."""
    _cache().set(KEY_PREFIX + message_id, 1, FLAG_SECONDS)
    watcher.notify(message_id)


def clear_stop(message_id: str) -> None:
    _cache().delete(KEY_PREFIX + message_id)
