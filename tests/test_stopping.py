"""The stop watcher: a poll costs one cache read, whatever the number of replies it watches, and still
finds a stop asked for through another process, or before the reply was watched."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings

from streaming import stopping
from streaming.stopping import GENERATION_KEY, KEY_PREFIX, StopWatcher

POLL = 0.02


class CountingCache:
    """The test cache, counting the keys each method was asked for."""

    def __init__(self) -> None:
        self.cache = caches["default"]
        self.keys: Counter[str] = Counter()

    def get(self, key: str, default: Any = None) -> Any:
        self.keys["get"] += 1
        return self.cache.get(key, default)

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        self.keys["get_many"] += len(keys)
        return self.cache.get_many(keys)

    def set(self, key: str, value: Any, timeout: float) -> None:
        self.cache.set(key, value, timeout)


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingCache]:
    counting = CountingCache()
    counting.cache.clear()
    monkeypatch.setattr(stopping, "_cache", lambda: counting)
    with override_settings(STREAMING={"STOP_POLL_SECONDS": POLL}):
        yield counting
    counting.cache.clear()


def stopped_by_another_process(cache: CountingCache, message_id: str) -> None:
    """What ``request_stop`` writes, from a process where the reply does not stream."""
    cache.set(KEY_PREFIX + message_id, 1, 60)
    cache.set(GENERATION_KEY, uuid.uuid4().hex, 60)


def watched(watcher: StopWatcher, count: int) -> tuple[list[str], dict[str, threading.Event]]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    events = {message_id: threading.Event() for message_id in ids}
    for message_id in ids:
        watcher.watch(message_id, events[message_id].set)
    return ids, events


def test_a_quiet_poll_reads_one_key_however_many_replies_stream(cache: CountingCache) -> None:
    watcher = StopWatcher()
    ids, events = watched(watcher, 200)
    time.sleep(POLL * 3)  # the first poll looks at the new replies' flags, once
    cache.keys.clear()
    started = time.monotonic()
    time.sleep(POLL * 10)
    polls = (time.monotonic() - started) / POLL  # (a loaded machine sleeps longer, and polls less often)
    assert cache.keys["get_many"] == 0
    assert 1 <= cache.keys["get"] <= polls + 2  # one read per poll, not one per reply
    assert not any(event.is_set() for event in events.values())
    for message_id in ids:
        watcher.forget(message_id)


def test_a_stop_through_another_process_is_found_at_the_next_poll(cache: CountingCache) -> None:
    watcher = StopWatcher()
    ids, events = watched(watcher, 20)
    time.sleep(POLL * 3)
    stopped_by_another_process(cache, ids[7])
    assert events[ids[7]].wait(POLL * 20)
    assert [m for m in ids if events[m].is_set()] == [ids[7]]
    for message_id in ids:
        watcher.forget(message_id)


def test_a_stop_asked_for_before_the_reply_was_watched_is_not_missed(cache: CountingCache) -> None:
    watcher = StopWatcher()
    early, early_events = watched(watcher, 1)
    time.sleep(POLL * 3)
    late = str(uuid.uuid4())
    stopped_by_another_process(cache, late)  # the generation changes before the reply is watched...
    time.sleep(POLL * 3)  # ...and a poll takes it in
    stopped = threading.Event()
    watcher.watch(late, stopped.set)
    assert stopped.wait(POLL * 20)
    assert not early_events[early[0]].is_set()
    watcher.forget(early[0])
