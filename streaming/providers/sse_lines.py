"""Server-Sent Events from a raw byte stream: ``(event name, data)`` pairs, data kept as bytes for orjson.

The vendors' own SSE parsers build an object per event and decode text first; the provider modules
read the SDK's raw streaming response with these instead.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterable, Iterator
from typing import Any

import httpx2

from streaming.exceptions import UpstreamError

SSEEvent = tuple[str, bytes]
#: The response extension under which the lean transport offers its body as raw chunks.
LEAN_BODY = "streaming.lean_body"
#: The longest line a provider accepts by default (its ``OPTIONS["max_line_bytes"]``): far above any
#: event a model sends, and a bound on what one line can make the process hold.
MAX_LINE = 8 * 1024 * 1024


def line_too_long(limit: int) -> UpstreamError:
    return UpstreamError(f"The model provider sent a line longer than {limit:,} bytes.")


class SSEDecoder:
    """Splits a byte stream into ``(event name, data)`` pairs.

    Lines end at CR, LF or CRLF only: unlike ``str.splitlines`` (which ``iter_lines`` uses), bytes never
    break at U+2028 or U+0085, which may appear raw inside a JSON string. A line that arrives in many
    chunks is kept as a list of them and joined once, when it ends: the time it takes grows with its
    length, not with its square. A line past ``max_line`` bytes fails the stream (``upstream``).
    """

    __slots__ = ("_data", "_event", "_max_line", "_pending", "_pending_size")

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._max_line = max_line
        self._pending: list[bytes] = []  # the start of a line whose end has not come yet
        self._pending_size = 0
        self._event = ""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._pending:
            if b"\n" not in chunk and b"\r" not in chunk and not self._pending[-1].endswith(b"\r"):
                self._hold(chunk)  # the line goes on
                return []
            chunk = b"".join([*self._pending, chunk])
            self._pending, self._pending_size = [], 0
        lines = chunk.splitlines(keepends=True)
        # A last line without LF is incomplete, or a CR whose LF is still on its way.
        if lines and not lines[-1].endswith(b"\n"):
            self._hold(lines.pop())
        if len(chunk) > self._max_line and any(len(line) > self._max_line + 2 for line in lines):
            raise line_too_long(self._max_line)
        return self._lines(lines)

    def _hold(self, part: bytes) -> None:
        self._pending.append(part)
        self._pending_size += len(part)
        if self._pending_size > self._max_line:
            raise line_too_long(self._max_line)

    def flush(self) -> list[SSEEvent]:
        """The end of the stream: dispatch what is pending, even without its blank line."""
        lines = [b"".join(self._pending)] if self._pending else []
        self._pending, self._pending_size = [], 0
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


def iter_sse(chunks: Iterable[bytes], max_line: int = MAX_LINE) -> Generator[SSEEvent, None, None]:
    decoder = SSEDecoder(max_line)
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.flush()


async def aiter_sse(response: Any, max_line: int = MAX_LINE) -> AsyncGenerator[list[SSEEvent], None]:
    """The SSE events of an httpx/httpx2 streaming ``response``, a list per network read (a model that
    trickles sends one event per read; a burst arrives in few reads, of many events each).

    On the lean transport (``streaming.providers.transport``) the body is read from it directly: the
    layers of httpx2's ``aiter_bytes`` cost a few µs per read, for nothing when there is no
    ``Content-Encoding`` to decode.
    """
    chunks = response.extensions.get(LEAN_BODY)
    if chunks is None or "content-encoding" in response.headers:
        chunks = response.aiter_bytes()
    decoder = SSEDecoder(max_line)
    async for chunk in chunks:
        events = decoder.feed(chunk)
        if events:
            yield events
    events = decoder.flush()
    if events:
        yield events


class LineLimit:
    """Counts the bytes of the line under way in a byte stream: ``line_too_long`` past ``limit``. For
    a stream whose lines another parser reads (google-genai's)."""

    __slots__ = ("_length", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._length = 0

    def check(self, chunk: bytes) -> bytes:
        last = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if last < 0:
            self._length += len(chunk)
        else:
            first = min(i for i in (chunk.find(b"\n"), chunk.find(b"\r")) if i >= 0)
            longest = self._length + first
            if len(chunk) > self.limit:  # (a smaller chunk cannot hold a whole line past the limit)
                longest = max(longest, *map(len, chunk.splitlines()))
            if longest > self.limit:
                raise line_too_long(self.limit)
            self._length = len(chunk) - last - 1
        if self._length > self.limit:
            raise line_too_long(self.limit)
        return chunk


def limit_lines(response: Any, limit: int) -> None:
    """Bound the lines of an httpx/httpx2 ``response``'s body to ``limit`` bytes, as it is read."""
    lines, stream = LineLimit(limit), response.stream
    if hasattr(stream, "__aiter__"):

        async def checked_async() -> AsyncGenerator[bytes, None]:
            async for chunk in stream:
                yield lines.check(chunk)

        response.stream = _AsyncStream(stream, checked_async())
    else:
        response.stream = _SyncStream(stream, (lines.check(chunk) for chunk in stream))


class _SyncStream(httpx2.SyncByteStream):
    def __init__(self, stream: Any, chunks: Iterator[bytes]) -> None:
        self._stream, self._chunks = stream, chunks

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        self._stream.close()


class _AsyncStream(httpx2.AsyncByteStream):
    def __init__(self, stream: Any, chunks: AsyncIterator[bytes]) -> None:
        self._stream, self._chunks = stream, chunks

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def aclose(self) -> None:
        await self._stream.aclose()
