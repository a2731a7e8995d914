"""Keep this process's replies alive in the database, and take over the replies of processes that died.

Every reply streaming here holds a lease: its message's ``updated_at``, renewed for all of them in one
UPDATE every quarter of ``STALE_AFTER_SECONDS``. A ``streaming`` message whose lease ran out belongs
to a process that died (a SIGKILL, a crash, a redeploy that outlasted its grace period). Every process
that streams or serves the API looks for such replies as often, and whenever a request touches one
(a stop, opening the conversation, a new message in it), and takes them over: the reply becomes
``interrupted`` with the text of its reply log (or, with a log that died with its process, its last
checkpoint), an estimated usage row, and its conversation is free for the next message.

A process that saw its own database work fail takes nothing over for a lease period after that: the
processes that stream must first get the chance to renew their leases. A process does this while it
streams, and for ``STALE_AFTER_SECONDS`` after its last request: an idle process holds no database
connection, and a request that touches a dead reply takes it over anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import orjson
from django.core.signals import setting_changed
from django.db.models import QuerySet
from django.dispatch import receiver

from streaming import database
from streaming.conf import app_settings
from streaming.models import Message
from streaming.timers import timers

if TYPE_CHECKING:
    from streaming.relay import Relay

logger = logging.getLogger(__name__)

#: How often the text of a reply whose log is not shared is stored, while it streams.
CHECKPOINT_SECONDS = 15.0

live: dict[str, Relay] = {}  # the replies streaming in this process
#: Set while the upkeep's own queries run: they are the process's, not any reply's (tests count apart).
in_upkeep: ContextVar[bool] = ContextVar("streaming_upkeep", default=False)
_checkpointed: dict[str, int] = {}  # message id -> text length at its last checkpoint
_lock = threading.Lock()
_running = False
_generation = 0
_busy = False
_failed_at: float | None = None  # when this process's upkeep last failed
_last_checkpoint = 0.0
_last_active = 0.0


def register(relay: Relay) -> None:
    live[relay.message_id] = relay
    ensure_running()


def active() -> None:
    """This process serves the API: keep up the upkeep for a while."""
    global _last_active
    _last_active = time.monotonic()
    if not _running:
        ensure_running()


def unregister(relay: Relay) -> None:
    live.pop(relay.message_id, None)
    _checkpointed.pop(relay.message_id, None)


def ensure_running() -> None:
    """Start the periodic upkeep of this process (once)."""
    global _running
    with _lock:
        if _running:
            return
        _running = True
    _schedule()


def stop() -> None:
    """Stop the periodic upkeep (it starts again with the next reply or API request)."""
    global _running, _generation
    with _lock:
        _running = False
        _generation += 1


def _schedule() -> None:
    global _generation
    _generation += 1
    generation = _generation
    timers.after(0, lambda: _tick(generation))


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "STREAMING" and _running:
        _schedule()  # (a new lease period starts now, not at the end of the old one)


def _tick(generation: int) -> None:
    global _busy
    if generation != _generation:
        return
    if not live and time.monotonic() - _last_active > app_settings.stale_after_seconds:
        stop()  # idle: until the next request or reply
        return
    timers.after(app_settings.stale_after_seconds / 4, lambda: _tick(generation))
    if _busy:  # (the last one is still at the database)
        return
    _busy = True
    database.start(upkeep).add_done_callback(_done)


def _done(work: Future[None]) -> None:
    global _busy, _failed_at
    _busy = False
    error = work.exception()
    if error is not None:
        if _failed_at is None or time.monotonic() - _failed_at > 60:
            logger.warning("streaming: could not renew replies' leases: %s", error)
        _failed_at = time.monotonic()


def upkeep() -> None:
    """One round: renew this process's leases, store texts due, take over stale replies."""
    from streaming.replylog import reply_log
    from streaming.saving import renew_leases

    token = in_upkeep.set(True)
    try:
        renew_leases(list(live))
        if not reply_log().shared:
            _checkpoint_texts()
        take_over_stale(Message.objects.all())
    finally:
        in_upkeep.reset(token)


def _checkpoint_texts() -> None:
    global _last_checkpoint
    from streaming.saving import checkpoint

    now = time.monotonic()
    if now - _last_checkpoint < CHECKPOINT_SECONDS:
        return
    _last_checkpoint = now
    for message_id, relay in list(live.items()):
        reply = relay.reply
        size = reply.output_chars
        if size != _checkpointed.get(message_id, 0):
            checkpoint(message_id, relay.parts())
            _checkpointed[message_id] = size


def may_take_over() -> bool:
    """False for a lease period after this process's own upkeep failed (see the module docstring)."""
    return _failed_at is None or time.monotonic() - _failed_at >= app_settings.stale_after_seconds


def take_over_stale(
    messages: QuerySet[Message], older_than: float | None = None, *, stopped: bool = False
) -> int:
    """Take over the replies among ``messages`` whose lease ran out ``older_than`` seconds ago (by default
    ``STALE_AFTER_SECONDS``); how many. One query when there are none. ``stopped``: its user asked it to
    stop, and it did not hear (it ends ``cancelled``, not ``interrupted``)."""
    from streaming.replylog import reply_log
    from streaming.saving import logged_parts, stale_replies, take_over

    if not may_take_over():
        return 0
    seconds = app_settings.stale_after_seconds if older_than is None else older_than
    stale, cutoff = stale_replies(messages, seconds)
    taken = 0
    log = reply_log()
    for message in stale:
        message_id = str(message.pk)
        if message_id in live:  # (its renewal is on its way)
            continue
        remote = log.remote(message_id)
        found = None
        if remote is not None:
            found = remote.read(-1, 0)
            remote.close()
        logged = logged_parts([orjson.loads(c) for c in found.json_chunks()]) if found is not None else None
        reply = take_over(message, cutoff, logged, stopped=stopped)
        if reply is None:
            continue
        taken += 1
        logger.warning("streaming: reply %s was interrupted (its process stopped); taken over", message_id)
        if found is not None:
            log.end_remote(message_id, found.next, reply.closing_chunks())
    return taken
