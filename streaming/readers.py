"""Readers of a reply: each takes the chunks after the last one it has, from wherever they are.

- ``LocalReader``: the reply's transcript in this process (it streams here, or ended a moment ago);
- ``RemoteReader``: the shared reply log (Redis) of a reply that streams in another process;
- ``StoredReader``: the stored message, once the reply has ended and its log is gone;
- ``WaitingReader``: a reply streaming in another process whose log is not shared (the in-memory
  backend with several processes): it waits for the reply to be stored, then replays that.

Each has a thread way (``wait``) and an event-loop way (``await_``) to get the next ``Slice``: None when
nothing came within the timeout (the caller sends a heartbeat). A reader that reads a live reply from
elsewhere looks at the stored message now and then: a reply that ended without its log saying so (it
was taken over, or its log was lost) is finished from storage. ``close()`` says the reader left.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from array import array

from streaming import database, presence
from streaming.exceptions import LogUnavailable
from streaming.models import Message
from streaming.replay import stored_chunks
from streaming.replylog import RemoteTranscript, Slice, Transcript
from streaming.sse import frame

#: How often a reader of a reply that streams elsewhere looks at its stored message.
STATUS_SECONDS = presence.REFRESH_SECONDS


class Reader:
    after: int = -1  # the id of the last chunk this reader has

    def wait(self, timeout: float) -> Slice | None:
        raise NotImplementedError

    async def await_(self, timeout: float) -> Slice | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _took(self, found: Slice | None) -> Slice | None:
        if found is not None:
            self.after = found.next - 1
        return found


class LocalReader(Reader):
    """Reads a transcript of this process; counted among its readers until ``close()`` (or until it is
    garbage, for a response that a server dropped without closing)."""

    def __init__(self, transcript: Transcript, after: int = -1) -> None:
        self.transcript = transcript
        self.after = after
        transcript.attach()
        self._leave = weakref.finalize(self, transcript.leave)
        self._waiter: asyncio.Future[None] | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def wait(self, timeout: float) -> Slice | None:
        return self._took(self.transcript.wait(self.after, timeout))

    async def await_(self, timeout: float) -> Slice | None:
        found, waiter = self.transcript.waiter(self.after)
        if waiter is not None:
            # One timer per reader, moved only when it rings early or a deadline comes sooner: every
            # token pushes the heartbeat's deadline later, and a timer per token would cost each one.
            loop = asyncio.get_running_loop()
            self._deadline = loop.time() + timeout
            if self._deadline < self._timer_at:
                self._set_timer(loop, self._deadline)
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
            found = self.transcript.read(self.after)
        return self._took(found)

    def _set_timer(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(when, self._ring, loop), when

    def _ring(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer, self._timer_at = None, math.inf
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if loop.time() < self._deadline:
            self._set_timer(loop, self._deadline)
        else:
            waiter.set_result(None)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._leave()


class StoredReader(Reader):
    """The stored message, replayed whole: ``start`` to its end, with its stored usage and cost."""

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self.done = False

    def _replay(self) -> Slice:
        chunks = stored_chunks(self.message_id)
        data = bytearray()
        ends = array("Q")
        for index, chunk in enumerate(chunks):
            data += frame(index, chunk)
            ends.append(len(data))
        self.done = True
        return Slice(0, bytes(data), ends, ended=True)

    def wait(self, timeout: float) -> Slice | None:
        return self._took(database.run(self._replay))

    async def await_(self, timeout: float) -> Slice | None:
        return self._took(await database.arun(self._replay))


class ReadyReader(Reader):
    """What was read already: the rest of an ended reply's log."""

    def __init__(self, found: Slice) -> None:
        self.found = found

    def wait(self, timeout: float) -> Slice | None:
        return self._took(self.found)

    async def await_(self, timeout: float) -> Slice | None:
        return self._took(self.found)


class _Elsewhere(Reader):
    """A reply streaming in another process: its stored message is looked at every ``STATUS_SECONDS``,
    and once it has ended without this reader seeing its end, the rest comes from storage."""

    def __init__(self, message_id: str, after: int = -1) -> None:
        self.message_id = message_id
        self.after = after

    def _poll(self, timeout: float) -> Slice | None:
        """What came within ``timeout`` (at most ``STATUS_SECONDS``); None when nothing did."""
        raise NotImplementedError

    async def _apoll(self, timeout: float) -> Slice | None:
        raise NotImplementedError

    def _stored_if_ended(self) -> Slice | None:
        # (on a database thread)
        if Message.objects.filter(pk=self.message_id, status=Message.Status.STREAMING).exists():
            return None
        return StoredReader(self.message_id)._replay()

    def wait(self, timeout: float) -> Slice | None:
        deadline = time.monotonic() + timeout
        while True:
            presence.mark_reading(self.message_id)
            left = deadline - time.monotonic()
            found = self._poll(min(max(left, 0.0), STATUS_SECONDS))
            if found is None:
                stored = database.run(self._stored_if_ended)
                if stored is not None:  # its log may end a moment after its message: prefer that
                    last = self._poll(0.25)
                    found = last if last is not None and last.ended else stored
            if found is not None or left <= STATUS_SECONDS:
                return self._took(found)

    async def await_(self, timeout: float) -> Slice | None:
        deadline = time.monotonic() + timeout
        while True:
            await database.arun(lambda: presence.mark_reading(self.message_id))
            left = deadline - time.monotonic()
            found = await self._apoll(min(max(left, 0.0), STATUS_SECONDS))
            if found is None:
                stored = await database.arun(self._stored_if_ended)
                if stored is not None:
                    last = await self._apoll(0.25)
                    found = last if last is not None and last.ended else stored
            if found is not None or left <= STATUS_SECONDS:
                return self._took(found)


class RemoteReader(_Elsewhere):
    """Reads a shared reply log (the reply streams, or streamed, in another process)."""

    def __init__(
        self, message_id: str, remote: RemoteTranscript, after: int = -1, found: Slice | None = None
    ) -> None:
        super().__init__(message_id, after)
        self.remote = remote
        self.found = found  # what the first look at the log found already

    def _poll(self, timeout: float) -> Slice | None:
        if self.found is not None:
            found, self.found = self.found, None
            return found
        try:
            return self.remote.read(self.after, timeout)
        except LogUnavailable:  # (the stored reply serves once it has ended)
            time.sleep(timeout)
            return None

    async def _apoll(self, timeout: float) -> Slice | None:
        if self.found is not None:
            found, self.found = self.found, None
            return found
        try:
            return await self.remote.aread(self.after, timeout)
        except LogUnavailable:
            await asyncio.sleep(timeout)
            return None

    def close(self) -> None:
        self.remote.close()


class WaitingReader(_Elsewhere):
    """A reply streaming in another process whose log this process cannot read: it waits for the
    reply to be stored, then replays it."""

    def _poll(self, timeout: float) -> Slice | None:
        time.sleep(timeout)
        return None

    async def _apoll(self, timeout: float) -> Slice | None:
        await asyncio.sleep(timeout)
        return None
