"""The streams a client reads: a reply that starts now, or one it attaches to, as Server-Sent Events
(a sync body for WSGI, an async one for ASGI) or one chunk at a time.

Starting a reply opens its transcript, sets its relay going and makes the first reader, the response
to the request. That reader starts the provider call once the ``start`` chunk has been written: a
client gone before that leaves a ``cancelled`` reply that called nobody. Attaching finds the reply
wherever it is (``attach``): its transcript in this process, the shared reply log, or its stored
message. Every body sends ``: ping`` when nothing came for ``HEARTBEAT_SECONDS`` and ends with
``data: [DONE]``; the reader leaves when the body is closed (the client went away).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import orjson

from streaming.conf import app_settings
from streaming.models import Message
from streaming.readers import LocalReader, Reader, ReadyReader, RemoteReader, StoredReader, WaitingReader
from streaming.relay import Relay
from streaming.reply import Chunk, ReplyState
from streaming.replylog import reply_log
from streaming.sse import DONE, PING


def begin(reply: ReplyState) -> tuple[Relay, LocalReader]:
    """The relay of a reply that starts now (its ``start`` chunk written), and its first reader."""
    transcript = reply_log().open(reply.message_id)
    reader = LocalReader(transcript)  # (counted before the relay watches for readers leaving)
    relay = Relay(reply, transcript)
    relay.begin()
    return relay, reader


def start_sync(reply: ReplyState) -> tuple[Iterator[bytes], Reader]:
    """The SSE body of a reply that starts now, under WSGI, and its reader (to close with the response)."""
    relay, reader = begin(reply)
    return sse_sync(reader, then=relay.start_thread), reader


def start_async(reply: ReplyState) -> tuple[AsyncIterator[bytes], Reader]:
    """``start_sync`` for ASGI: the provider is called in a task of the server's event loop."""
    relay, reader = begin(reply)
    return sse_async(reader, then=relay.start_task), reader


def attach(message: Message, after: int = -1) -> Reader:
    """A reader of ``message``'s reply from the chunk after id ``after``, wherever it is."""
    message_id = str(message.pk)
    log = reply_log()
    transcript = log.local(message_id)
    if transcript is not None:
        return LocalReader(transcript, after)
    streaming = message.status == Message.Status.STREAMING
    remote = log.remote(message_id)
    if remote is not None:
        found = remote.read(after, 0)  # (LogUnavailable, a 503, when the store is unreachable)
        if streaming:
            return RemoteReader(message_id, remote, after, found)
        remote.close()
        if found is not None and found.ended:  # it ended a moment ago, and its log is still there
            return ReadyReader(found)
    return WaitingReader(message_id, after) if streaming else StoredReader(message_id)


def sse_sync(reader: Reader, then: Callable[[], object] | None = None) -> Iterator[bytes]:
    """A reader's chunks as SSE events; ``then`` is called once the first of them was written."""
    heartbeat = app_settings.heartbeat_seconds
    try:
        while True:
            found = reader.wait(heartbeat)
            if found is None:
                yield PING
            elif found.ended:
                yield found.data + DONE
                return
            else:
                yield found.data
                if then is not None:
                    then()
                    then = None
    finally:
        reader.close()


async def sse_async(reader: Reader, then: Callable[[], object] | None = None) -> AsyncIterator[bytes]:
    """``sse_sync`` on an event loop."""
    heartbeat = app_settings.heartbeat_seconds
    try:
        while True:
            found = await reader.await_(heartbeat)
            if found is None:
                yield PING
            elif found.ended:
                yield found.data + DONE
                return
            else:
                yield found.data
                if then is not None:
                    then()
                    then = None
    finally:
        reader.close()


def reply_chunks(reply: ReplyState) -> Iterator[Chunk]:
    """A reply that starts now, one chunk at a time, on this thread (the ``chat`` command, tests)."""
    relay, reader = begin(reply)
    try:
        started = False
        while True:
            found = reader.wait(app_settings.heartbeat_seconds)
            if found is None:
                continue
            for data in found.json_chunks():
                yield orjson.loads(data)
            if found.ended:
                return
            if not started:
                started = True
                relay.start_thread()
    finally:
        reader.close()
