"""A reply's chunks in this process: written by its relay, read by any number of readers.

The relay appends the reply's chunks as they are made; each reader (the response that started the
reply, a reload, a second tab, a WebSocket) takes everything after the last chunk it has, and waits
when there is nothing new. A chunk gets its id, and its SSE encoding, when it is sealed: a text or
reasoning delta stays open while nobody has read it, and the deltas of the same part that follow are
merged into it, so the tokens that arrived together leave as one chunk (one JSON encoding, one event).

Readers are counted: when the last one leaves, the relay is told (``on_unread``), which is how a
reply notices that nobody is watching it any more and starts its grace period.
"""

from __future__ import annotations

import asyncio
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from streaming.sse import frame

Chunk = dict[str, Any]
_DELTAS = frozenset(("text-delta", "reasoning-delta"))


@dataclass(frozen=True, slots=True)
class Slice:
    """Chunks ``first`` to ``first + len(ends) - 1`` as SSE events; ``ended``: the reply's last is in it."""

    first: int
    data: bytes
    ends: array[int]  # where each chunk ends in ``data``
    ended: bool = False

    @property
    def next(self) -> int:
        """The id of the chunk after these."""
        return self.first + len(self.ends)

    def after(self, last: int) -> Slice:
        """This slice without the chunks up to id ``last``."""
        skip = last + 1 - self.first
        if skip <= 0:
            return self
        offset = self.ends[skip - 1] if skip <= len(self.ends) else len(self.data)
        ends = array("Q", (end - offset for end in self.ends[skip:]))
        return Slice(self.first + skip, self.data[offset:], ends, self.ended)

    def json_chunks(self) -> Iterator[bytes]:
        """Each chunk's JSON, without its SSE framing (``id: n`` and ``data: ``), for the WebSocket."""
        start = 0
        for index, end in enumerate(self.ends):
            prefix = len(b"id: %d\ndata: " % (self.first + index))
            yield self.data[start + prefix : end - 2]
            start = end


class Transcript:
    """The chunks of one reply, in order, and the readers waiting for more."""

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._data = bytearray()
        self._ends = array("Q")
        self._tail: Chunk | None = None  # an open delta, not yet sealed
        self._tail_parts: list[str] = []
        self._sync_waiting = 0
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.ended = False
        self.ended_at: float | None = None
        self.readers = 0
        self.on_unread: Callable[[], object] | None = None  # the relay's: the last reader left
        self.on_append: Callable[[Transcript], object] | None = None  # a backend's: mirror it
        self.mirror_pending = False  # (the backend's: copying to a shared store is due)

    # -- writing (the relay) ----------------------------------------------------------------------
    def append(self, chunks: list[Chunk]) -> None:
        if not chunks:
            return
        with self._lock:
            for chunk in chunks:
                tail = self._tail
                if tail is not None and chunk["type"] == tail["type"] and chunk["id"] == tail["id"]:
                    self._tail_parts.append(chunk["delta"])
                    continue
                self._seal()
                if chunk["type"] in _DELTAS:
                    self._tail = chunk
                    self._tail_parts = [chunk["delta"]]
                else:
                    self._write(chunk)
            waiters = self._wake()
        self._notify(waiters)

    def end(self, chunks: list[Chunk]) -> None:
        """The closing chunks: nothing comes after them."""
        with self._lock:
            self._seal()
            for chunk in chunks:
                self._write(chunk)
            self.ended = True
            self.ended_at = time.monotonic()
            waiters = self._wake()
        self._notify(waiters)

    def _seal(self) -> None:
        tail = self._tail
        if tail is None:
            return
        if len(self._tail_parts) > 1:
            tail["delta"] = "".join(self._tail_parts)
        self._tail = None
        self._write(tail)

    def _write(self, chunk: Chunk) -> None:
        self._data += frame(len(self._ends), chunk)
        self._ends.append(len(self._data))

    def _wake(self) -> list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]:
        # (under the lock) Sync readers are woken here; async ones, outside it, by _notify.
        if self._sync_waiting:
            self._changed.notify_all()
        if self.on_append is not None:
            self.on_append(self)
        waiters, self._async_waiters = self._async_waiters, []
        return waiters

    @staticmethod
    def _notify(waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
        if not waiters:
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for loop, waiter in waiters:
            if loop is here:
                if not waiter.done():
                    waiter.set_result(None)
            elif not loop.is_closed():  # (a reader on another thread's loop: the save's thread, say)
                loop.call_soon_threadsafe(_release, waiter)

    # -- reading ----------------------------------------------------------------------------------
    def read(self, after: int) -> Slice | None:
        """The chunks after id ``after`` (-1: from the first); None when there is nothing new."""
        with self._lock:
            return self._read(after)

    def _read(self, after: int) -> Slice | None:
        self._seal()
        first = after + 1
        count = len(self._ends)
        if first >= count:
            return Slice(count, b"", array("Q"), True) if self.ended else None
        offset = self._ends[first - 1] if first else 0
        with memoryview(self._data) as view:
            data = view[offset:].tobytes()
        ends = array("Q", (end - offset for end in self._ends[first:]))
        return Slice(first, data, ends, self.ended)

    def wait(self, after: int, timeout: float) -> Slice | None:
        """``read``, waiting up to ``timeout`` seconds for something new (from a thread)."""
        with self._lock:
            found = self._read(after)
            if found is not None:
                return found
            self._sync_waiting += 1
            try:
                self._changed.wait(timeout)
            finally:
                self._sync_waiting -= 1
            return self._read(after)

    def waiter(self, after: int) -> tuple[Slice | None, asyncio.Future[None] | None]:
        """``read``, or a future that is done when there is something new (from an event loop)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._read(after)
            if found is not None:
                return found, None
            waiter = loop.create_future()
            self._async_waiters.append((loop, waiter))
            return None, waiter

    # -- readers ----------------------------------------------------------------------------------
    def attach(self) -> None:
        with self._lock:
            self.readers += 1

    def leave(self) -> None:
        with self._lock:
            self.readers -= 1
            unread = self.readers == 0 and not self.ended
        if unread and self.on_unread is not None:
            self.on_unread()

    def __len__(self) -> int:
        with self._lock:
            return len(self._ends) + (self._tail is not None)


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
