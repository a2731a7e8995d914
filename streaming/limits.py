"""Fair use, per user: how many replies stream at once, and how many start in a minute.

``services.start_reply`` asks ``starting(user_id)`` before it stores anything: past
``MAX_CONCURRENT_REPLIES`` replies streaming, or ``REPLIES_PER_MINUTE`` started in this clock minute,
the request gets ``TooManyReplies`` (a 429 with Retry-After, an error frame over WebSocket). A reply
refused for any other reason (a 402, a 409...) gives back what it took. ``saving.save_reply`` calls
``reply_ended`` once the reply is saved, however it ended (a takeover of a dead process's reply too).

Both are counters in the Django cache (``CACHE_ALIAS``), so they hold across processes when the cache
is shared (Redis, Memcached, files), and cost a cache increment each: atomic where the cache has
atomic increments (Redis, Memcached, local memory). The database's ``streaming`` replies are the
truth of what streams: when the cache lost the count (restarted, evicted, or after ``COUNT_SECONDS``
where an increment keeps the key's expiry, so that a count that drifted is mended), it is counted
again from them. On a cache whose
increments read and then write (files, the database), a process's threads take turns, but processes
can race past a limit by a reply or two. The minute is a fixed
window: a user may start up to twice the limit within 60 seconds across a minute's end. A cache that
fails limits nothing: chat goes on, with a warning in the log.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import BaseCache, caches

from streaming.conf import app_settings
from streaming.exceptions import TooManyReplies
from streaming.models import Message

logger = logging.getLogger(__name__)

#: How long a count of streaming replies is trusted before it is made again from the database.
COUNT_SECONDS = 60
#: What a request refused for too many replies at once is told to wait: a reply usually ends by then.
BUSY_RETRY_AFTER = 5
WINDOW_SECONDS = 60
#: How often a cache that fails is reported in the log.
WARN_EVERY_SECONDS = 60.0

_warned_at: float | None = None
_counting = threading.Lock()


@dataclass(slots=True)
class Admission:
    """The counters a starting reply took, to give back if it does not start after all."""

    user_id: Any
    taken: list[str] = field(default_factory=list)

    def give_back(self) -> None:
        for key in self.taken:
            _decrement(key)
        self.taken.clear()


@contextlib.contextmanager
def starting(user_id: Any) -> Iterator[Admission]:
    """Admit a reply of ``user_id`` (``TooManyReplies`` when over a limit); what the block raises gives
    the reply's place back."""
    admission = admit(user_id)
    try:
        yield admission
    except BaseException:
        admission.give_back()
        raise


def admit(user_id: Any) -> Admission:
    """Count a reply of ``user_id`` that starts now, or raise ``TooManyReplies``."""
    admission = Admission(user_id)
    most = app_settings.max_concurrent_replies
    if most is not None:
        key = streaming_key(user_id)
        if _over(admission, key, most, lambda: _streaming_now(user_id), COUNT_SECONDS):
            raise TooManyReplies(
                f"You have {most} replies streaming, the most at once. Wait for one to end, or stop one.",
                retry_after=BUSY_RETRY_AFTER,
            )
    per_minute = app_settings.replies_per_minute
    if per_minute is not None:
        now = time.time()
        key = f"streaming:limits:started:{user_id}:{int(now // WINDOW_SECONDS)}"
        if _over(admission, key, per_minute, lambda: 0, WINDOW_SECONDS * 2):
            admission.give_back()
            raise TooManyReplies(
                f"You started {per_minute} replies this minute, the most per minute.",
                retry_after=math.ceil(WINDOW_SECONDS - now % WINDOW_SECONDS),
            )
    return admission


def reply_ended(user_id: Any) -> None:
    """A reply of ``user_id`` is saved: it streams no more."""
    if app_settings.max_concurrent_replies is not None:
        _decrement(streaming_key(user_id))


def streaming_key(user_id: Any) -> str:
    return f"streaming:limits:streaming:{user_id}"


def _streaming_now(user_id: Any) -> int:
    """The user's replies streaming now, as the database has them."""
    mine = Message.objects.filter(conversation__owner_id=user_id, role=Message.Role.ASSISTANT)
    return mine.filter(status=Message.Status.STREAMING).count()


def _over(admission: Admission, key: str, most: int, count: Callable[[], int], timeout: int) -> bool:
    """Add one to the counter ``key`` (made from ``count()`` when the cache has none); whether that
    passes ``most``, in which case it is taken back. False, counting nothing, when the cache fails."""
    try:
        value = _increment(_cache(), key, count, timeout)
    except Exception as error:  # (whatever the cache's client raises: chat goes on without it)
        _warn(error)
        return False
    admission.taken.append(key)
    if value > most:
        _decrement(key)
        admission.taken.remove(key)
        return True
    return False


def _increment(cache: BaseCache, key: str, count: Callable[[], int], timeout: int) -> int:
    for _ in range(3):
        try:
            with _turn(cache):
                return cache.incr(key)
        except ValueError:  # not in the cache (never counted, lost, or expired): count it again
            with _turn(cache):
                cache.add(key, count(), timeout)
    raise RuntimeError(f"the cache keeps no counter under {key!r}")  # (a dummy cache)


def _decrement(key: str) -> None:
    cache = _cache()
    try:
        with _turn(cache):
            value = cache.decr(key)
    except ValueError:
        return  # counted again from the database when next needed
    except Exception as error:
        _warn(error)
        return
    if value < 0:  # (a reply counted by another process's local cache): count again next time
        with contextlib.suppress(Exception):
            _cache().delete(key)


def _cache() -> BaseCache:
    return caches[app_settings.cache_alias]


def _turn(cache: BaseCache) -> contextlib.AbstractContextManager[object]:
    """Where the cache's increment reads and then writes (Django's file and database caches: those
    that keep ``BaseCache.incr``), this process's threads take turns; processes may still race."""
    return _counting if type(cache).incr is BaseCache.incr else contextlib.nullcontext()


def _warn(error: BaseException) -> None:
    global _warned_at
    now = time.monotonic()
    if _warned_at is None or now - _warned_at >= WARN_EVERY_SECONDS:
        _warned_at = now
        logger.warning("streaming: the cache failed; per-user reply limits are not enforced: %r", error)
