"""A lean HTTP/1.1 transport for the providers' async SDK clients (``openai``, ``anthropic``).

The SDKs' own async transport (httpx2 over httpcore2, h11 and anyio) costs about 50 µs of CPU for
each HTTP chunk it reads, and a model that trickles sends one chunk per token: a thousand streams at
30 tokens/s would spend one and a half cores on reading alone. This transport reads each
connection with an asyncio protocol instead (``streaming.providers.wire``), at about a third of the
cost. The SDK still builds, authenticates and sends the request through its httpx2 client (headers,
timeouts, redirects), and turns error responses into its exceptions; only the HTTP exchange on the
socket is done here.

It speaks HTTP/1.1 with keep-alive, TLS with the SDK client's certificates (``tls_context``), TCP
keep-alive probes as the Anthropic SDK sets them, at most ``max_connections`` connections per origin
(a request waits for one up to the pool timeout) and the connect, write, read and pool timeouts of
each request. A request is written once: a kept connection is checked before the request goes out,
and a connection that fails after it went out fails the call, for the request may have reached the
model (a second write would be a second generation, and a second bill), as httpcore does for every
method. ``streaming.providers.clients.async_http_client`` keeps the SDK's own transport where this one
would not be as safe: a proxy in the environment, or the provider's ``OPTIONS`` asking for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from functools import partial
from typing import Any

import httpx2

from streaming.providers.sse_lines import LEAN_BODY
from streaming.providers.wire import Connection, ResponseBody, read_head, request_head

KEEPALIVE_EXPIRY = 5.0  # seconds an idle connection is kept (httpx's default)
MAX_IDLE_PER_ORIGIN = 100  # idle connections kept per origin (the SDKs' max_keepalive_connections)
MAX_CONNECTIONS = 1000  # open connections per origin (the SDKs' max_connections)
Origin = tuple[str, str, int]


class LeanTransport(httpx2.AsyncBaseTransport):
    """``httpx2.AsyncClient(transport=LeanTransport())``: HTTP/1.1 on asyncio protocols, pooled. One
    per event loop (its connections and waits belong to the loop that made them)."""

    def __init__(
        self, ssl_context: ssl.SSLContext | None = None, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        self._ssl_context = ssl_context
        self._max_connections = max_connections
        self._idle: dict[Origin, list[Connection]] = {}
        self._open: dict[Origin, int] = {}
        self._changed: asyncio.Event | None = None  # set when a connection is released or closed

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx2.UnsupportedProtocol(f"The URL scheme {url.scheme!r} is not supported.")
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts = request.extensions.get("timeout") or {}
        head = request_head(request)
        body = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
        connection = await self._connection(origin, timeouts)
        try:  # written once: whatever fails from here on fails the call
            connection.send(head + body)
            await connection.drain(timeouts.get("write"))
            status, reason, headers, version = await read_head(connection, timeouts.get("read"))
        except BaseException:
            connection.close()
            raise
        response = (request.method, status, headers, version)
        stream = ResponseBody(connection, partial(self.release, origin), response, timeouts.get("read"))
        extensions = {"http_version": version, "reason_phrase": reason, "network_stream": connection}
        extensions[LEAN_BODY] = stream  # read directly by the providers (sse_lines.aiter_sse)
        return httpx2.Response(status, headers=headers, stream=stream, extensions=extensions)

    async def _connection(self, origin: Origin, timeouts: dict[str, Any]) -> Connection:
        """An idle connection that is still open, else a new one while the origin has fewer than
        ``max_connections``, else the first one released or a free place, within the pool timeout."""
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                while True:
                    connection = self._idle_connection(origin)
                    if connection is not None:
                        return connection
                    if self._open.get(origin, 0) < self._max_connections:
                        break
                    if self._changed is None:
                        self._changed = asyncio.Event()
                    await self._changed.wait()
        except TimeoutError:
            raise httpx2.PoolTimeout("No connection to the model provider was free in time.") from None
        return await self._connect(origin, timeouts.get("connect"))

    def _idle_connection(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if now - connection.idle_since < KEEPALIVE_EXPIRY and connection.idle_and_open():
                return connection
            connection.close()  # closed by the server while idle, or about to be: never written to
        return None

    def release(self, origin: Origin, connection: Connection) -> None:
        """A response read to its end gives its connection back for the next request."""
        idle = self._idle.setdefault(origin, [])
        if not connection.reusable or len(idle) >= MAX_IDLE_PER_ORIGIN:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)
        self._wake()

    def _closed(self, origin: Origin) -> None:
        self._open[origin] -= 1
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def _connect(self, origin: Origin, timeout: float | None) -> Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = self._tls() if scheme == "https" else None
        self._open[origin] = self._open.get(origin, 0) + 1
        counted = Connection(on_close=lambda: self._closed(origin))
        try:
            async with asyncio.timeout(timeout):
                transport, connection = await loop.create_connection(
                    lambda: counted, host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            counted.close()
            raise httpx2.ConnectTimeout(f"Connecting to {host}:{port} timed out.") from None
        except (OSError, ssl.SSLError) as exc:
            counted.close()
            raise httpx2.ConnectError(f"Could not connect to {host}:{port}: {exc}") from exc
        except BaseException:
            counted.close()
            raise
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
