"""The demo project's Redis cache, which a Redis outage does not turn into errors.

Django's ``RedisCache`` raises when Redis is unreachable, and the session engine the demo uses
(``cached_db``) writes a session back to the cache after reading it from the database: with Redis away,
every request would fail. Here a read that cannot reach Redis is a miss, and a write is dropped, with a
warning logged once a minute at most: sessions come from the database, chat goes on, and only what needs
Redis across processes (a stop sent through another process) waits for it to return.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger("streaming")

_warned_at = 0.0


def _forgiving(default: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            global _warned_at
            try:
                return method(*args, **kwargs)
            except redis.RedisError as error:
                if time.monotonic() - _warned_at > 60:
                    _warned_at = time.monotonic()
                    logger.warning(
                        "the Redis cache is unreachable (%s): reads miss, writes are dropped", error
                    )
                return default() if callable(default) else default

        return call

    return decorate


class FailSafeRedisCache(RedisCache):
    get = _forgiving(None)(RedisCache.get)
    get_many = _forgiving(dict)(RedisCache.get_many)
    has_key = _forgiving(False)(RedisCache.has_key)
    set = _forgiving(None)(RedisCache.set)
    add = _forgiving(False)(RedisCache.add)
    touch = _forgiving(False)(RedisCache.touch)
    set_many = _forgiving(list)(RedisCache.set_many)
    delete = _forgiving(False)(RedisCache.delete)
    delete_many = _forgiving(None)(RedisCache.delete_many)
    clear = _forgiving(None)(RedisCache.clear)
