"""HTTP/1.1 on one asyncio connection, for the lean transport (``streaming.providers.transport``).

``Connection`` is the asyncio protocol of one TCP (or TLS) connection: the bytes received, flow control
both ways, and the task waiting for more. ``request_head`` writes a request's head, refusing what h11
(the SDKs' own HTTP/1.1 library) refuses, so that no header can smuggle a second request; ``read_head``
reads a response's head; ``ResponseBody`` decodes its body from its framing (``Content-Length``, chunked
or close-delimited) as it arrives, and gives the connection back once the body was read to its end.
Failures raise httpx2's exceptions, which the SDKs map as usual.
"""

from __future__ import annotations

import asyncio
import re
import select
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2

MAX_HEAD = 64 * 1024  # bytes of status line and headers
HIGH_WATER = 256 * 1024  # unread body bytes at which the socket stops being read
# A body's first piece is at most this many bytes, and each next one up to GROWTH times the last: a
# burst (a whole reply in one read) reaches the reader's first token without being decoded whole
# first, and a long burst still comes in few large pieces.
FIRST_PIECE = 2048
GROWTH = 8

# RFC 9110's token (a method, a header name), and what a field value or a request target must not hold
# (control characters, CR and LF above all); the same rules as h11's.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[^\t\x20-\x7e\x80-\xff]")
_BAD_TARGET = re.compile(rb"[^\x21-\x7e\x80-\xff]")


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: bytes received, the task waiting for more, and the writes' flow
    control. ``on_close`` is called once, whichever way the connection ends."""

    def __init__(self, on_close: Callable[[], None] = lambda: None) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False  # the peer closed, or the connection was lost
        self.error: BaseException | None = None
        self.idle_since = 0.0
        self._on_close: Callable[[], None] | None = on_close
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None  # set while the socket's send buffer is full
        self._paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._wait_started = 0.0
        self._timeout = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # (uvloop's are no asyncio.Transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
        self._wake()
        self.resume_writing()
        self._ended()

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def send(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise httpx2.WriteError("The connection to the model provider is closed.")
        self.transport.write(data)

    async def drain(self, timeout: float | None) -> None:
        """Wait until the socket takes what was sent; httpx2.WriteTimeout after ``timeout``."""
        drained = self._drained
        if drained is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(drained)
        except TimeoutError:
            raise httpx2.WriteTimeout("The model provider did not take the request in time.") from None

    async def receive(self, timeout: float | None) -> None:
        """Wait until more bytes arrive or the connection ends; httpx2.ReadTimeout after ``timeout``."""
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        if self.closed:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        if timeout is not None:
            self._wait_started = loop.time()
            self._timeout = timeout
            if self._timer is None:  # one timer per connection, moved on only when it fires
                self._timer = loop.call_at(self._wait_started + timeout, self._check_timeout)
        try:
            await waiter
        finally:
            self._waiter = None

    def _check_timeout(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # not waiting now: the next wait sets a timer again
        loop = asyncio.get_running_loop()
        deadline = self._wait_started + self._timeout
        if loop.time() < deadline:
            self._timer = loop.call_at(deadline, self._check_timeout)  # a later wait: not due yet
            return
        waiter.set_exception(httpx2.ReadTimeout("The model provider sent nothing within the read timeout."))

    def take(self, end: int) -> bytes:
        data = bytes(self.buffer[:end])
        del self.buffer[:end]
        return data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The socket and the like, as httpcore's network streams give them (``hang_up_for`` uses it)."""
        return default if self.transport is None else self.transport.get_extra_info(name, default)

    @property
    def reusable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def idle_and_open(self) -> bool:
        """Whether an idle connection can carry a request: open, with nothing unread, and nothing
        waiting on its socket either. The peer's close may have arrived while the event loop was busy
        (as httpcore asks ``is_socket_readable``): found here, before the request is written, it is
        safe to take another connection; found after, the request may have reached the server."""
        if not self.reusable or self.buffer:
            return False
        sock = self.get_extra_info("socket")
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()
        self._ended()

    def _ended(self) -> None:
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()


def request_head(request: httpx2.Request) -> bytes:
    """The request line and headers of ``request``; httpx2.LocalProtocolError for a method, target or
    header that would not be one (a CR or LF in a value would start a header, or a request, of its own)."""
    method, target = request.method.encode("ascii"), request.url.raw_path
    if not _TOKEN.fullmatch(method) or not target or _BAD_TARGET.search(target):
        raise httpx2.LocalProtocolError(f"Invalid request line: {method[:20]!r} {target[:100]!r}.")
    lines = [b"%s %s HTTP/1.1" % (method, target)]
    for name, value in request.headers.raw:
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            raise httpx2.LocalProtocolError(f"Invalid header {name[:100]!r}: a name or value HTTP forbids.")
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def read_head(
    connection: Connection, timeout: float | None
) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]:
    """The final response's status, reason, headers and version (1xx interim responses are skipped)."""
    while True:
        end = connection.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(connection.buffer) > MAX_HEAD:
                raise httpx2.RemoteProtocolError("The response headers are too long.")
            if connection.closed:
                raise httpx2.RemoteProtocolError("The server closed the connection without a response.")
            await connection.receive(timeout)
            continue
        status_line, *lines = connection.take(end + 4)[:-4].split(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or not code.isdigit():
            raise httpx2.RemoteProtocolError(f"Malformed status line {status_line[:100]!r}.")
        status = int(code)
        if 100 <= status < 200 and status != 101:
            continue
        return status, reason, _headers(lines), version


def _headers(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and headers:  # obsolete line folding: part of the previous value
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip())
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise httpx2.RemoteProtocolError(f"Malformed header line {line[:100]!r}.")
        headers.append((name, value.strip()))
    return headers


def _chunk_size(line: bytearray) -> int:
    text = bytes(line).split(b";", 1)[0].strip()
    try:
        return int(text, 16)
    except ValueError:
        raise httpx2.RemoteProtocolError(f"Malformed chunk size {text[:20]!r}.") from None


class ResponseBody(httpx2.AsyncByteStream):
    """A response's body, decoded from its framing, as it arrives; ``release(connection)`` takes the
    connection back once the body is read to its end, and it is closed when the body is left unread."""

    def __init__(
        self,
        connection: Connection,
        release: Callable[[Connection], None],
        head: tuple[str, int, list[tuple[bytes, bytes]], bytes],
        timeout: float | None,
    ) -> None:
        method, status, headers, version = head
        self._connection: Connection | None = connection
        self._release = release
        self._timeout = timeout
        names = {name.lower(): value for name, value in headers}
        encoding = names.get(b"transfer-encoding", b"").lower()
        tokens = {token.strip() for token in names.get(b"connection", b"").lower().split(b",")}
        self._keep = b"close" not in tokens and (version != b"HTTP/1.0" or b"keep-alive" in tokens)
        self._length: int | None = None  # bytes left of a Content-Length body
        self._chunked = encoding.rstrip().endswith(b"chunked")
        if method == "HEAD" or status in (204, 304):
            self._length = 0
        elif not self._chunked and b"content-length" in names:
            try:
                self._length = int(names[b"content-length"])
            except ValueError:
                raise httpx2.RemoteProtocolError("Malformed Content-Length.") from None
        elif not self._chunked:
            self._keep = False  # read until the server closes
        self._chunk_left = 0  # bytes left of the current chunk
        self._chunk_crlf = False  # a chunk's data was read; its CRLF not yet
        self._done = self._length == 0
        self._piece = FIRST_PIECE  # the most bytes of body the next piece holds

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            raise httpx2.StreamClosed()
        try:
            while not self._done:
                data = self._decode(connection) if connection.buffer else b""
                if data:
                    yield data
                elif self._done:
                    break
                elif connection.closed:
                    self._closed_early(connection)
                else:  # (what the buffer holds is not a whole chunk header yet)
                    await connection.receive(self._timeout)
        except BaseException:
            self._discard()
            raise
        self._finish()

    def _decode(self, connection: Connection) -> bytes:
        limit, self._piece = self._piece, min(self._piece * GROWTH, HIGH_WATER)
        if self._chunked:
            return self._dechunk(connection, limit)
        if self._length is None:
            return connection.take(limit)
        data = connection.take(min(self._length, limit))
        self._length -= len(data)
        if not self._length:
            self._done = True
        return data

    def _dechunk(self, connection: Connection, limit: int) -> bytes:
        """The chunk data the buffer holds, up to ``limit`` bytes, in one piece (its framing read in one
        pass, and cut from the buffer once)."""
        buffer = connection.buffer
        out: list[bytes] = []
        pos, end = 0, len(buffer)
        while pos < end and limit:
            if self._chunk_left:
                take = min(self._chunk_left, end - pos, limit)
                out.append(bytes(buffer[pos : pos + take]))
                pos += take
                limit -= take
                self._chunk_left -= take
                self._chunk_crlf = not self._chunk_left
            elif self._chunk_crlf:
                if end - pos < 2:
                    break
                if buffer[pos : pos + 2] != b"\r\n":
                    raise httpx2.RemoteProtocolError("Malformed chunked body.")
                pos += 2
                self._chunk_crlf = False
            else:
                line_end = buffer.find(b"\r\n", pos)
                if line_end < 0:
                    if end - pos > 1024:
                        raise httpx2.RemoteProtocolError("Malformed chunk size line.")
                    break
                size = _chunk_size(buffer[pos:line_end])
                if size == 0:
                    trailers_end = buffer.find(b"\r\n\r\n", line_end)
                    if trailers_end < 0:
                        break  # the last chunk's trailer section is not all here yet
                    pos = trailers_end + 4
                    self._done = True
                    break
                pos = line_end + 2
                self._chunk_left = size
        del buffer[:pos]
        return out[0] if len(out) == 1 else b"".join(out)

    def _closed_early(self, connection: Connection) -> None:
        if self._length is None and not self._chunked:
            self._done = True  # a close-delimited body ends when the connection does
            return
        if connection.error is not None:
            raise httpx2.ReadError(f"The connection to the model provider broke: {connection.error}")
        raise httpx2.RemoteProtocolError("The server closed the connection before the body was complete.")

    def _finish(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._keep and not connection.buffer:
            self._release(connection)
        else:
            connection.close()

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def aclose(self) -> None:
        if self._done:
            self._finish()
        else:
            self._discard()  # left unread (a stopped reply): hang up, so that the upstream stops
