"""Server-Sent Events: a chunk's event, the end marker, the heartbeat comment, and the response class."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast

import orjson
from django.http import StreamingHttpResponse

DONE = b"data: [DONE]\n\n"
PING = b": ping\n\n"


def frame(chunk_id: int, chunk: dict[str, Any]) -> bytes:
    """One chunk as an event: ``id: <n>`` + ``data: <json>`` + a blank line. (JSON has no raw newline,
    so a blank line never occurs inside an event.)"""
    return b"id: %d\ndata: %s\n\n" % (chunk_id, orjson.dumps(chunk))


class EventStreamResponse(StreamingHttpResponse):
    """A ``text/event-stream`` response that proxies do not buffer.

    Under ASGI its generator is what Django's handler reads and closes (``aclosing``), so cleanup
    in the generator's ``finally`` runs on a disconnect too; when a middleware wrapped the content,
    the generator is closed when that ends (Django's ``close()`` closes only sync iterators:
    ticket #37066). There is no ``Connection`` header: it is hop-by-hop, and WSGI forbids it.
    """

    def __init__(
        self,
        content: Iterator[bytes] | AsyncIterator[bytes],
        *,
        on_close: Callable[[], object] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(content, content_type="text/event-stream", **kwargs)
        self._generator = content
        if on_close is not None:
            # Also when the body never started: a generator closed before its first step runs no
            # ``finally``, and a server may drop a response whose client left early.
            self._resource_closers.append(on_close)  # type: ignore[attr-defined]
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
