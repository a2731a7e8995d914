"""The reply log: where a streaming reply's chunks are kept, so that any reader can attach to it.

A backend is chosen by ``STREAMING["REPLY_LOG"]`` (``BACKEND``, a dotted path, and ``OPTIONS``), like
Django's cache and session backends. Every backend keeps the transcripts of the replies that stream in
this process in memory (``Transcript``): the relay writes there, and readers in this process read
there, without a round trip. A backend whose ``shared`` is true also mirrors them to a store that other
processes read (``remote``): Redis Streams, in ``streaming.replylog.redis``.

A transcript is kept ``KEEP_SECONDS`` after its reply ended, for readers that come late (a reload
just as the reply finished); after that, the stored message serves them. At most ``MAX_ENDED`` ended
transcripts are kept in memory, the oldest dropped first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from streaming.replylog.transcript import Chunk, Slice, Transcript


class RemoteTranscript(Protocol):
    """A reply's log in a shared store, read from a process that does not stream it. A read that cannot
    reach the store raises ``streaming.exceptions.LogUnavailable``."""

    def read(self, after: int, timeout: float) -> Slice | None:
        """The chunks after id ``after``, waiting up to ``timeout`` seconds; None when none came."""

    async def aread(self, after: int, timeout: float) -> Slice | None:
        """``read`` for an event loop."""

    def close(self) -> None:
        """Stop reading (the reader left)."""


class ReplyLog:
    """The base backend: this process's transcripts, in memory. Nothing is shared."""

    #: Whether other processes can read this process's replies (then a takeover finds their text here).
    shared: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = dict(options or {})
        self.keep_seconds = float(options.get("KEEP_SECONDS", 300))
        self.max_ended = int(options.get("MAX_ENDED", 1000))
        self._lock = threading.Lock()
        self._transcripts: dict[str, Transcript] = {}

    def open(self, message_id: str) -> Transcript:
        """A new transcript for a reply that starts streaming in this process."""
        transcript = Transcript(message_id)
        with self._lock:
            self._forget_old()
            self._transcripts[message_id] = transcript
        return transcript

    def local(self, message_id: str) -> Transcript | None:
        """The transcript of a reply of this process (streaming, or ended not long ago)."""
        with self._lock:
            transcript = self._transcripts.get(message_id)
            if transcript is not None and self._expired(transcript, time.monotonic()):
                del self._transcripts[message_id]
                return None
            return transcript

    def remote(self, message_id: str) -> RemoteTranscript | None:
        """A reader of a reply that streams (or streamed) in another process; None when not shared."""
        return None

    def end_remote(self, message_id: str, first: int, chunks: list[Chunk]) -> None:
        """Append the closing chunks of a reply taken over from a dead process, ids from ``first``, and
        end its shared log, so that its readers end too (nothing to do when nothing is shared)."""

    def close(self) -> None:
        """Release what the backend holds (tests switch backends)."""

    def _expired(self, transcript: Transcript, now: float) -> bool:
        return transcript.ended_at is not None and now - transcript.ended_at > self.keep_seconds

    def _forget_old(self) -> None:
        # (under the lock) Cheap while few replies ended: it looks at each transcript once per open.
        now = time.monotonic()
        ended = [t for t in self._transcripts.values() if t.ended_at is not None]
        for transcript in ended:
            if self._expired(transcript, now):
                del self._transcripts[transcript.message_id]
        surplus = len(ended) - self.max_ended
        if surplus > 0:
            for transcript in sorted(ended, key=lambda t: t.ended_at or 0)[:surplus]:
                self._transcripts.pop(transcript.message_id, None)
