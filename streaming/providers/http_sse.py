"""The shared skeleton of providers whose vendor streams Server-Sent Events over HTTP through its SDK
(OpenAI Chat Completions, Anthropic Messages).

``HTTPSSEProvider`` owns what they share: the SDK clients (one sync client, one async client per event
loop, on the transports of ``streaming.providers.clients``), the request (the body built by the vendor
module, sent through the SDK's ``client.post``: its URL, authentication, headers, timeouts and error
classes), the stream (the raw response read with ``sse_lines``, and each event's data handed to the
vendor's ``Chunks`` mapping), the hang-up (``ChatRequest.hangup``: the socket from the request on, the
response once it opens) and the error mapping (every failure leaves as a ``ProviderError`` without the
key). A vendor module gives its SDK, its path, its body and its ``Chunks``, like a session backend
gives its store to ``django/contrib/sessions/backends/base.py``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Generator
from contextlib import aclosing, closing
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar, Protocol

import httpx2
import orjson

from streaming.events import Event
from streaming.exceptions import ProviderConnectionError, ProviderError, ProviderTimeout
from streaming.providers.base import ChatRequest, Provider
from streaming.providers.clients import async_http_client, calling, sync_http_client
from streaming.providers.sse_lines import MAX_LINE, aiter_sse, iter_sse
from streaming.providers.upstream import (
    ErrorEvent,
    SDKClients,
    common_error,
    malformed,
    missing_key,
    notify_open,
    redacted,
    status_error,
    transport_classes,
)


class Chunks(Protocol):
    """A vendor's mapping from the data of its stream's events to normalized events."""

    def feed(self, data: bytes) -> list[Event]: ...

    def end(self) -> list[Event]:
        """The body ended: the last events (usage, the finish); a stream cut short raises."""
        ...


@dataclass(frozen=True)
class SDK:
    """What the skeleton uses of a vendor's SDK (the Stainless-made ones share these names)."""

    module: ModuleType  # its module: ``Client``, ``AsyncClient``, ``Default(Async)HttpxClient``
    client: type[Any]
    async_client: type[Any]
    error: type[Exception]  # the base of its exceptions


class HTTPSSEProvider(Provider):
    """Base class of the providers that read a vendor's SSE stream from its SDK's raw response.

    A subclass sets ``sdk``, ``path``, ``default_base_url`` and ``base_url_env``, and implements
    ``body(request)`` and ``chunks()``. ``OPTIONS`` every one of them takes: ``base_url``,
    ``api_key_env``, ``timeout``, ``headers``, ``verify`` and ``cert`` (TLS), ``sdk_transport``,
    ``max_line_bytes`` (the longest line of the stream, default 8 MB).
    """

    sdk: ClassVar[SDK]
    path: ClassVar[str]  # the streaming endpoint, under the base URL
    default_base_url: ClassVar[str]
    base_url_env: ClassVar[str]

    def __init__(self, name: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(name, options)
        sdk = self.sdk
        self._clients: SDKClients[Any, Any] = SDKClients(
            lambda: sdk.client(
                **self.client_options(), **sync_http_client(sdk.module.DefaultHttpxClient, self.options)
            ),
            lambda: sdk.async_client(
                **self.client_options(), **async_http_client(sdk.module.DefaultAsyncHttpxClient, self.options)
            ),
        )
        self.max_line = int(self.options.get("max_line_bytes", MAX_LINE))

    # -- what a vendor gives ----------------------------------------------------------------------

    def body(self, request: ChatRequest) -> dict[str, Any]:
        raise NotImplementedError

    def chunks(self) -> Chunks:
        raise NotImplementedError

    # -- the request --------------------------------------------------------------------------------

    def base_url(self) -> str:
        env = self.options.get("base_url_env", self.base_url_env)
        return str(self.options.get("base_url") or os.environ.get(env) or self.default_base_url)

    def key(self) -> str:
        """The API key, stripped (a stray newline would make an invalid header); ``auth`` without one."""
        key = (self.api_key() or "").strip()
        if not key:
            raise missing_key(self.name, self.key_variables())
        return key

    def client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"api_key": self.key(), "base_url": self.base_url(), "max_retries": 0}
        if "timeout" in self.options:
            options["timeout"] = float(self.options["timeout"])
        if self.options.get("headers"):
            options["default_headers"] = dict(self.options["headers"])
        return options

    def _post(self, client: Any, request: ChatRequest) -> Any:
        """Send the body through the SDK's client, built here: the SDKs' typed ``create`` first runs every
        message through a TypedDict transform to send the same JSON (5 ms for a 40-message history on
        the path to the first token), and parses each chunk into an object we would not use."""
        content = orjson.dumps(self.body(request))
        return client.post(self.path, cast_to=httpx2.Response, content=content, stream=True)

    # -- the stream ---------------------------------------------------------------------------------

    def stream(self, request: ChatRequest) -> Generator[Event, None, None]:
        try:
            with calling(request.hangup):  # a hang-up before the response opens closes the socket
                response = self._post(self._clients.sync(), request)
            with closing(response):
                notify_open(request, response)
                chunks = self.chunks()
                if _is_json(response):
                    raise not_a_stream(response.read())
                with closing(iter_sse(response.iter_bytes(), self.max_line)) as events:
                    for _name, data in events:
                        yield from chunks.feed(data)
                yield from chunks.end()
        except self._failures() as exc:
            raise self._error(exc) from None

    async def astream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        try:
            response = await self._post(self._clients.for_loop(), request)
            async with aclosing(response):
                notify_open(request, response)
                chunks = self.chunks()
                if _is_json(response):
                    raise not_a_stream(await response.aread())
                async with aclosing(aiter_sse(response, self.max_line)) as events:
                    async for batch in events:
                        for _name, data in batch:
                            for event in chunks.feed(data):
                                yield event
                for event in chunks.end():
                    yield event
        except self._failures() as exc:
            raise self._error(exc) from None

    # -- failures -------------------------------------------------------------------------------------

    def _failures(self) -> tuple[type[Exception], ...]:
        """What the SDK and the stream may raise; each becomes a ``ProviderError``."""
        return (ProviderError, ErrorEvent, self.sdk.error, orjson.JSONDecodeError, *transport_classes())

    def _error(self, exc: Exception) -> ProviderError:
        """The one way a failure leaves ``stream``/``astream``: a ``ProviderError`` without the key, which
        an error body or an error event may quote."""
        secrets = [self.api_key()]
        module = self.sdk.module
        if isinstance(exc, module.APIStatusError):
            error = status_error(exc.status_code, exc.body, headers=exc.response.headers, secrets=secrets)
        elif isinstance(exc, module.APITimeoutError):
            error = ProviderTimeout()
        elif isinstance(exc, module.APIConnectionError):
            error = ProviderConnectionError()
        else:
            error = common_error(exc, secrets)
        return redacted(error, secrets)


def _is_json(response: Any) -> bool:
    return "json" in response.headers.get("content-type", "")


def not_a_stream(data: bytes) -> Exception:
    """What a JSON body says where the stream should be: some compatible servers answer an error this
    way, with status 200 (vLLM's shape has no ``error`` key, but ``"object": "error"``)."""
    body = orjson.loads(data)
    if isinstance(body, dict) and (body.get("error") or body.get("object") == "error"):
        return ErrorEvent(body, where="instead of a stream")
    return malformed()
