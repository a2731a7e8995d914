"""A lean HTTP/1.1 transport for the providers' async SDK clients (``openai``, ``anthropic``).

The SDKs' own async transport (httpx2 over httpcore2, h11 and anyio) costs about 50 µs of CPU for
each HTTP chunk it reads, and a model that trickles sends one chunk per token: a thousand streams at
30 tokens/s would spend one and a half cores on reading alone. This transport reads each
connection with an asyncio protocol instead, at about a third of the cost. The SDK still builds,
authenticates and sends the request through its httpx2 client (headers, timeouts, redirects), and
turns error responses into its exceptions; only the HTTP exchange on the socket is done here.

It speaks HTTP/1.1 with keep-alive (``Content-Length``, chunked and close-delimited bodies; TLS with
the certificates httpx2 trusts; TCP keep-alive probes, as the Anthropic SDK sets them). Failures
raise httpx2's exceptions, which the SDKs map as usual. ``async_http_client`` keeps the SDK's own
transport when the environment configures a proxy, or when the provider's ``OPTIONS`` ask for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx2

from streaming.providers.sse_lines import LEAN_BODY

KEEPALIVE_EXPIRY = 5.0  # seconds an idle connection is kept (httpx's default)
MAX_IDLE_PER_ORIGIN = 100  # idle connections kept per origin (the SDKs' max_keepalive_connections)
MAX_HEAD = 64 * 1024  # bytes of status line and headers
HIGH_WATER = 256 * 1024  # unread body bytes at which the socket stops being read
# A body's first piece is at most this many bytes, and each next one up to GROWTH times the last: a
# burst (a whole reply in one read) reaches the reader's first token without being decoded whole
# first, and a long burst still comes in few large pieces.
FIRST_PIECE = 2048
GROWTH = 8
Origin = tuple[str, str, int]


def async_http_client(
    sdk_client: Callable[..., httpx2.AsyncClient], options: Mapping[str, Any]
) -> dict[str, Any]:
    """``{"http_client": ...}`` for an async SDK client: the SDK's default client class (its timeouts,
    limits and redirects) on a ``LeanTransport``. Empty, for the SDK's own transport, when the
    provider's ``OPTIONS`` say ``"sdk_transport": True`` or the environment configures a proxy (httpx2
    honours proxies only with its own transport)."""
    if options.get("sdk_transport") or urllib.request.getproxies_environment():
        return {}
    return {"http_client": sdk_client(transport=LeanTransport())}


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: bytes received, and the task waiting for more."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False  # the peer closed, or the connection was lost
        self.error: BaseException | None = None
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
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

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

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

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()


class LeanTransport(httpx2.AsyncBaseTransport):
    """``httpx2.AsyncClient(transport=LeanTransport())``: HTTP/1.1 on asyncio protocols, pooled."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self._idle: dict[Origin, list[Connection]] = {}

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx2.UnsupportedProtocol(f"The URL scheme {url.scheme!r} is not supported.")
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts = request.extensions.get("timeout") or {}
        head = _request_head(request)
        body = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
        while True:
            connection, reused = self._idle_connection(origin), True
            if connection is None:
                connection, reused = await self._connect(origin, timeouts.get("connect")), False
            try:
                connection.transport.write(head + body)  # type: ignore[union-attr]
                status, reason, headers, version = await _read_head(connection, timeouts.get("read"))
            except httpx2.RemoteProtocolError:
                connection.close()
                if reused and not connection.buffer:
                    continue  # the server had closed this idle connection as we sent: try a new one
                raise
            except BaseException:
                connection.close()
                raise
            break
        stream = ResponseBody(self, origin, connection, request.method, status, headers, version, timeouts)
        extensions = {"http_version": version, "reason_phrase": reason, "network_stream": connection}
        extensions[LEAN_BODY] = stream  # read directly by the providers (sse_lines.aiter_sse)
        return httpx2.Response(status, headers=headers, stream=stream, extensions=extensions)

    def _idle_connection(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if (
                connection.reusable
                and now - connection.idle_since < KEEPALIVE_EXPIRY
                and not connection.buffer
            ):
                return connection
            connection.close()
        return None

    def release(self, origin: Origin, connection: Connection) -> None:
        """A response read to its end gives its connection back for the next request."""
        idle = self._idle.setdefault(origin, [])
        if not connection.reusable or len(idle) >= MAX_IDLE_PER_ORIGIN:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    async def _connect(self, origin: Origin, timeout: float | None) -> Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = self._tls() if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                transport, connection = await loop.create_connection(
                    Connection, host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            raise httpx2.ConnectTimeout(f"Connecting to {host}:{port} timed out.") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx2.ConnectError(f"Could not connect to {host}:{port}: {exc}") from exc
        _keep_alive(transport.get_extra_info("socket"))
        return connection

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx2.create_ssl_context()
        return self._ssl_context

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


def _request_head(request: httpx2.Request) -> bytes:
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    lines += [name + b": " + value for name, value in request.headers.raw]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _read_head(
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


def _keep_alive(sock: Any) -> None:
    """TCP keep-alive probes after a minute of silence: a long quiet stream (thinking) stays open
    through NATs and load balancers, and a dead peer is found out."""
    if sock is None:
        return
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 60), ("TCP_KEEPCNT", 5)):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    for level, option, value in options:
        with contextlib.suppress(OSError):
            sock.setsockopt(level, option, value)


class ResponseBody(httpx2.AsyncByteStream):
    """A response's body, decoded from its framing, as it arrives; the connection goes back to the
    pool once the body is read to its end, and is closed when the body is left unread."""

    def __init__(
        self,
        transport: LeanTransport,
        origin: Origin,
        connection: Connection,
        method: str,
        status: int,
        headers: list[tuple[bytes, bytes]],
        version: bytes,
        timeouts: dict[str, Any],
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection: Connection | None = connection
        self._timeout = timeouts.get("read")
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
            self._transport.release(self._origin, connection)
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
