"""How the providers' SDK clients connect: their TLS options, and the HTTP transport of each kind.

* ``tls_context``: the provider's ``OPTIONS["verify"]`` (a CA bundle, file or directory; ``False`` turns
  checks off) and ``OPTIONS["cert"]`` (a client certificate: one PEM file with its key, or
  ``[certificate, key]``). Without them, the certificates httpx2 trusts (``SSL_CERT_FILE`` and
  ``SSL_CERT_DIR`` included).
* ``async_http_client``: async clients (ASGI) on the lean transport (``streaming.providers.transport``),
  or on the SDK's own where that one would not be as safe (a proxy in the environment) or ``OPTIONS``
  ask for it (``"sdk_transport": True``).
* ``sync_http_client``: sync clients (WSGI) on httpx2's own transport, whose sockets are handed to the
  call's ``Hangup`` as soon as a request is written on them (``calling``). A WSGI reply's provider call
  runs on a thread that blocks reading the upstream, and only a shut-down socket wakes it: from the
  request on, not only once the response headers came, so that a stop or a timeout while the model is
  still silent (thinking, or queued) ends the upstream call at once rather than when it answers.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from functools import partial
from typing import Any

import httpcore2
import httpx2

from streaming.providers.base import Hangup
from streaming.providers.transport import LeanTransport

#: What the SDKs' default clients allow (``DEFAULT_CONNECTION_LIMITS`` of openai and anthropic).
LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
#: TCP keep-alive probes after a minute of silence, as the Anthropic SDK sets them.
KEEP_ALIVE = [
    (level, getattr(socket, name), value)
    for level, name, value in [
        (socket.SOL_SOCKET, "SO_KEEPALIVE", 1),
        (socket.IPPROTO_TCP, "TCP_KEEPIDLE", 60),
        (socket.IPPROTO_TCP, "TCP_KEEPINTVL", 60),
        (socket.IPPROTO_TCP, "TCP_KEEPCNT", 5),
    ]
    if hasattr(socket, name)
]

_calling: ContextVar[Hangup | None] = ContextVar("streaming_calling", default=None)


def tls_context(options: Mapping[str, Any]) -> ssl.SSLContext | None:
    """The TLS settings of ``OPTIONS["verify"]`` and ``OPTIONS["cert"]``; None without either."""
    verify, cert = options.get("verify", True), options.get("cert")
    if verify is True and not cert:
        return None
    if verify is True:
        context = httpcore2.default_ssl_context()
    elif verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif os.path.isdir(verify):
        context = ssl.create_default_context(capath=verify)
    else:
        context = ssl.create_default_context(cafile=verify)
    if cert:
        context.load_cert_chain(*([cert] if isinstance(cert, (str, os.PathLike)) else cert))
    return context


def async_http_client(
    sdk_client: Callable[..., httpx2.AsyncClient], options: Mapping[str, Any]
) -> dict[str, Any]:
    """``{"http_client": ...}`` for an async SDK client: the SDK's default client class (its timeouts,
    limits and redirects) on a ``LeanTransport``, or on its own transport when ``OPTIONS`` say
    ``"sdk_transport": True`` or the environment configures a proxy (which the lean one ignores)."""
    tls = tls_context(options)
    if options.get("sdk_transport") or urllib.request.getproxies_environment():
        return {"http_client": sdk_client(verify=tls)} if tls is not None else {}
    return {"http_client": sdk_client(transport=LeanTransport(ssl_context=tls))}


def sync_http_client(sdk_client: Callable[..., httpx2.Client], options: Mapping[str, Any]) -> dict[str, Any]:
    """``{"http_client": ...}`` for a sync SDK client: the SDK's default client class on a
    ``HangupTransport`` (a proxy of the environment is still honoured: httpx2 mounts its own transport)."""
    return {"http_client": sdk_client(transport=HangupTransport(tls_context(options)))}


@contextlib.contextmanager
def calling(hangup: Hangup) -> Iterator[None]:
    """Hand the sockets of the requests that this thread (or task) writes meanwhile to ``hangup``."""
    token = _calling.set(hangup)
    try:
        yield
    finally:
        _calling.reset(token)


def shut_down(sock: Any) -> None:
    """Shut ``sock`` down, from any thread: the thread blocked reading it wakes up with an error, and
    the peer sees a FIN. (Closing it would not wake that thread.) Nothing if it is closed already."""
    with contextlib.suppress(OSError, TypeError):
        if isinstance(sock, socket.socket):
            # The base method: ``SSLSocket.shutdown`` would also unwrap TLS under the reader's feet.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        elif sock is not None:  # asyncio's TransportSocket forwards shutdown
            sock.shutdown(socket.SHUT_RDWR)


class HangupTransport(httpx2.HTTPTransport):
    """httpx2's sync transport (httpcore2's pool, h11), whose connections tell the calling thread's
    ``Hangup`` about their socket when a request is written on them."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(verify=tls or True, limits=LIMITS, socket_options=KEEP_ALIVE)
        pool = self._pool
        if isinstance(pool, httpcore2.ConnectionPool):  # (a proxy's pool keeps the plain backend)
            pool._network_backend = HangupBackend(pool._network_backend)


class HangupBackend(httpcore2.NetworkBackend):
    def __init__(self, backend: httpcore2.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return HangupStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.NetworkStream:
        return HangupStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class HangupStream(httpcore2.NetworkStream):
    """A connection's network stream: a write hands its socket to the ``Hangup`` of the call under way
    (a kept connection serves many calls, one at a time: each write names the current one)."""

    def __init__(self, stream: httpcore2.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        hangup = _calling.get()
        if hangup is not None:
            hangup.opened(partial(shut_down, self._stream.get_extra_info("socket")))
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.NetworkStream:
        return HangupStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)
