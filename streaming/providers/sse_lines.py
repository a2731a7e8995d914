"""Server-Sent Events from a raw byte stream: ``(event name, data)`` pairs, data kept as bytes for orjson.

The vendors' own SSE parsers build an object per event and decode text first; the provider modules
read the SDK's raw streaming response with these instead.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Iterable
from typing import Any

SSEEvent = tuple[str, bytes]
#: The response extension under which the lean transport offers its body as raw chunks.
LEAN_BODY = "streaming.lean_body"


class SSEDecoder:
    """Splits a byte stream into ``(event name, data)`` pairs.

    Lines end at CR, LF or CRLF only: unlike ``str.splitlines`` (which ``iter_lines`` uses), bytes never
    break at U+2028 or U+0085, which may appear raw inside a JSON string.
    """

    __slots__ = ("_data", "_event", "_tail")

    def __init__(self) -> None:
        self._tail = b""
        self._event = ""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._tail:
            chunk = self._tail + chunk
        lines = chunk.splitlines(keepends=True)
        # A last line without LF is incomplete, or a CR whose LF is still on its way.
        self._tail = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
        return self._lines(lines)

    def flush(self) -> list[SSEEvent]:
        """The end of the stream: dispatch what is pending, even without its blank line."""
        lines = [self._tail] if self._tail else []
        self._tail = b""
        return self._lines([*lines, b""])

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            if not line:
                if self._data:
                    events.append((self._event, b"\n".join(self._data)))
                self._event, self._data = "", []
            elif line[0] != 0x3A:  # a line starting with ":" is a comment
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"data":
                    self._data.append(value)
                elif name == b"event":
                    self._event = value.decode("utf-8", "replace")
        return events


def iter_sse(chunks: Iterable[bytes]) -> Generator[SSEEvent, None, None]:
    decoder = SSEDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.flush()


async def aiter_sse(response: Any) -> AsyncGenerator[list[SSEEvent], None]:
    """The SSE events of an httpx/httpx2 streaming ``response``, a list per network read (a model that
    trickles sends one event per read; a burst arrives in few reads, of many events each).

    On the lean transport (``streaming.providers.transport``) the body is read from it directly: the
    layers of httpx2's ``aiter_bytes`` cost a few µs per read, for nothing when there is no
    ``Content-Encoding`` to decode.
    """
    chunks = response.extensions.get(LEAN_BODY)
    if chunks is None or "content-encoding" in response.headers:
        chunks = response.aiter_bytes()
    decoder = SSEDecoder()
    async for chunk in chunks:
        events = decoder.feed(chunk)
        if events:
            yield events
    events = decoder.flush()
    if events:
        yield events
