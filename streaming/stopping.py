"""Stop a streaming reply from any tab or server process.

``request_stop`` writes a flag in the Django cache, and a new value under one shared key, the stops'
generation; it wakes the reply at once when it streams in this process. Each process polls the
generation every ``STOP_POLL_SECONDS``, one cache read whatever the number of replies it streams,
and reads the flags of its replies (one ``get_many``) only when the generation changed, or for the
replies that started since the last poll. So a stop reaches a reply streamed by another process when
the cache is shared between processes (Redis, Memcached, database or file cache). With the
local-memory cache a stop reaches only replies of the same process.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

from django.core.cache import BaseCache, caches

from streaming.conf import app_settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "streaming:stop:"
GENERATION_KEY = "streaming:stops"
FLAG_SECONDS = 3600


def _cache() -> BaseCache:
    return caches[app_settings.cache_alias]


class StopWatcher:
    """The replies streaming in this process, and the thread that polls for their stop flags."""

    def __init__(self) -> None:
        self._callbacks: dict[str, Callable[[], object]] = {}
        self._new: set[str] = set()  # watched since the last poll: their flags may predate it
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._generation: object = None  # the stops' generation at the last poll

    def watch(self, message_id: str, on_stop: Callable[[], object]) -> None:
        with self._lock:
            self._callbacks[message_id] = on_stop
            self._new.add(message_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._poll, name="streaming-stop-watcher", daemon=True)
                self._thread.start()

    def forget(self, message_id: str) -> None:
        with self._lock:
            self._callbacks.pop(message_id, None)
            self._new.discard(message_id)

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
                watched = bool(self._callbacks)
            if not watched:
                if time.monotonic() - idle_since > 30:
                    with self._lock:
                        if not self._callbacks:
                            self._thread = None
                            return
                continue
            idle_since = time.monotonic()
            try:
                self._check()
            except Exception:  # a cache outage must not kill the watcher; stops wait for it to return
                logger.exception("streaming: could not read stop flags from the cache")

    def _check(self) -> None:
        cache = _cache()
        generation = cache.get(GENERATION_KEY)
        with self._lock:
            if generation != self._generation:  # a stop somewhere: look at every reply here
                ids = list(self._callbacks)
            else:
                ids = [message_id for message_id in self._new if message_id in self._callbacks]
            self._new.clear()
        self._generation = generation
        if ids:
            for key in cache.get_many([KEY_PREFIX + message_id for message_id in ids]):
                self.notify(key.removeprefix(KEY_PREFIX))


watcher = StopWatcher()


def request_stop(message_id: str) -> bool:
    """Ask the reply ``message_id`` to stop, wherever it streams; True when it streams in this process
    (it has stopped by now). Without the cache, only a reply of this process hears the stop."""
    if watcher.notify(message_id):
        return True
    try:
        cache = _cache()
        cache.set(KEY_PREFIX + message_id, 1, FLAG_SECONDS)
        # A value no other stop writes (a counter would need an atomic increment, not every cache's).
        cache.set(GENERATION_KEY, uuid.uuid4().hex, FLAG_SECONDS)
    except Exception as error:
        logger.warning("streaming: could not pass a stop on through the cache: %s", error)
    return watcher.notify(message_id)  # (it may have started here meanwhile)
