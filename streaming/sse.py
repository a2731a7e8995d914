"""Server-Sent Events: chunk encoding, the heartbeat comment, and the streaming response class."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, cast

import orjson
from django.http import StreamingHttpResponse

from streaming.relay import HEARTBEAT, run_async, run_sync
from streaming.reply import ReplyState

DONE = b"data: [DONE]\n\n"
PING = b": ping\n\n"


class ChunkEncoder:
    """Numbers the events of one stream: ``id: <n>`` + ``data: <json>`` + a blank line."""

    def __init__(self) -> None:
        self.next_id = 0

    def encode(self, chunks: Iterable[dict[str, Any]]) -> bytes:
        out = bytearray()
        for chunk in chunks:
            out += b"id: %d\ndata: %s\n\n" % (self.next_id, orjson.dumps(chunk))
            self.next_id += 1
        return bytes(out)


def stream_sync(reply: ReplyState) -> Iterator[bytes]:
    """The SSE body of a reply under WSGI."""
    encoder = ChunkEncoder()
    batches = run_sync(reply)
    try:
        for batch in batches:
            yield PING if batch is HEARTBEAT else encoder.encode(batch)
        yield DONE
    finally:
        batches.close()


async def stream_async(reply: ReplyState, *, database_here: bool = False) -> AsyncIterator[bytes]:
    """The SSE body of a reply under ASGI (``database_here``: see ``run_async``)."""
    encoder = ChunkEncoder()
    batches = run_async(reply, database_here=database_here)
    try:
        async for batch in batches:
            yield PING if batch is HEARTBEAT else encoder.encode(batch)
        yield DONE
    finally:
        await batches.aclose()


class EventStreamResponse(StreamingHttpResponse):
    """A ``text/event-stream`` response that proxies do not buffer.

    Under ASGI its generator is what Django's handler reads and closes (``aclosing``), so cleanup
    in the generator's ``finally`` runs on a disconnect too; when a middleware wrapped the content,
    the generator is closed when that ends (Django's ``close()`` closes only sync iterators:
    ticket #37066). There is no ``Connection`` header: it is hop-by-hop, and WSGI forbids it.
    """

    def __init__(self, content: Iterator[bytes] | AsyncIterator[bytes], **kwargs: Any) -> None:
        super().__init__(content, content_type="text/event-stream", **kwargs)
        self._generator = content
        self["Cache-Control"] = "no-cache"
        self["X-Accel-Buffering"] = "no"
        self["x-vercel-ai-ui-message-stream"] = "v1"

    def __aiter__(self) -> AsyncIterator[bytes]:
        # The generator yields bytes: Django's ASGI handler reads it directly (and closes it), without
        # its layer that makes each part bytes, unless a middleware replaced the content (then
        # Django's layer reads that, and the generator is closed when it ends).
        current = getattr(self, "_iterator", None)  # (Django's: what streaming_content wraps now)
        if current is self._generator and hasattr(current, "__anext__"):
            return cast(AsyncIterator[bytes], current)
        return self._wrapped()

    async def _wrapped(self) -> AsyncIterator[bytes]:
        try:
            async for part in super().__aiter__():
                yield part
        finally:
            aclose = getattr(self._generator, "aclose", None)
            if aclose is not None:
                await aclose()
