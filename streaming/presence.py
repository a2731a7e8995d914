"""Readers of a reply in other processes, known to the process that streams it through the Django cache.

A reply whose own readers all left goes on for its grace period, then ends, unless someone reads it
elsewhere: a reader in another process (a reload that reached another worker) marks itself here every
few seconds while it waits, and the relay looks before it gives up. With a cache that is not shared
between processes (local memory), only readers of the same process count.
"""

from __future__ import annotations

import logging

from django.core.cache import caches

from streaming.conf import app_settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "streaming:reader:"
#: A reader refreshes its mark at least this often (seconds): the mark lasts a little longer.
REFRESH_SECONDS = 2.0


def mark_reading(message_id: str) -> None:
    """Say that a reader in this process reads ``message_id`` (for the next few seconds)."""
    try:
        caches[app_settings.cache_alias].set(KEY_PREFIX + message_id, 1, int(REFRESH_SECONDS * 3))
    except Exception as error:  # the cache is away: the reply may end after its grace, nothing worse
        logger.warning("streaming: could not mark a reader in the cache: %s", error)


def read_elsewhere(message_id: str) -> bool:
    """Whether a reader in another process marked itself lately."""
    try:
        return caches[app_settings.cache_alias].get(KEY_PREFIX + message_id) is not None
    except Exception as error:
        logger.warning("streaming: could not look for readers in the cache: %s", error)
        return False
