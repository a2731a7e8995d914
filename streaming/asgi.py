"""Django's ASGI handler, with a sync view and its middleware run in one thread hop.

Under ASGI, Django runs each sync middleware's request half, its response half, its ``process_view``
and the sync view each through ``sync_to_async``: a hop from the event loop to the request's thread
and back, about 150 µs each here, and about twenty of them for the standard middleware of a new
project. Only the sync code moves; the hops are the cost. Under WSGI the same chain is plain calls.

``ASGIHandler`` here runs a request whose view is sync as WSGI would, the whole middleware chain and
the view in one call, in the same thread Django would use (``sync_to_async``, thread-sensitive), and
hands the response to Django's ASGI code as usual: a streaming response with an async iterator (the
chat stream) is still read on the event loop. A request for an async view takes Django's own path.
Nothing else changes: signals, disconnects, middleware and exception handling are Django's.

It also keeps the requests' threads (``RequestThreads``): Django starts a thread for every request and
ends it afterwards; here a request takes an idle one that an earlier request left (asgiref 3.13's
``ThreadSensitiveContext(executor=...)``; with an older asgiref, a new thread per request as Django
does). Requests at the same time still each have a thread of their own.

Use it in the project's ``asgi.py`` in place of ``django.core.asgi.get_asgi_application``::

    from streaming.asgi import get_asgi_application

    application = get_asgi_application()
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import django
from asgiref.sync import ThreadSensitiveContext, iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler
from django.core.handlers.base import BaseHandler
from django.http import FileResponse, HttpRequest
from django.http.response import HttpResponseBase
from django.urls import Resolver404, get_resolver

#: asgiref 3.13 lets a request's thread-sensitive context use a given thread (``executor``), kept after it.
REUSES_THREADS = "executor" in inspect.signature(ThreadSensitiveContext).parameters


class RequestThreads:
    """Threads for the requests' sync code, each kept for a later request when its request ends.

    Django gives every request a thread of its own (asgiref's ``ThreadSensitiveContext``), started for
    it and ended after it: about 0.3 ms on the way to the view. Here a request takes an idle thread,
    and gives it back when it ends; at most ``keep`` idle threads are kept.
    """

    def __init__(self, keep: int = 64) -> None:
        self.keep = keep
        self._idle: list[ThreadPoolExecutor] = []

    def take(self) -> ThreadPoolExecutor:
        if self._idle:
            return self._idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="django-request")

    def give(self, executor: ThreadPoolExecutor) -> None:
        if len(self._idle) < self.keep:
            self._idle.append(executor)
        else:
            executor.shutdown(wait=False)


class ASGIHandler(DjangoASGIHandler):
    """Django's ``ASGIHandler``, running a sync view's whole middleware chain in one thread hop."""

    def __init__(self) -> None:
        super().__init__()
        self._sync = BaseHandler()
        self._sync.load_middleware(is_async=False)
        self.threads = RequestThreads()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not REUSES_THREADS:
            return await super().__call__(scope, receive, send)
        executor = self.threads.take()
        try:
            # (every sync call of the request has ended when ``handle`` returns: asgiref waits for a
            # cancelled one to finish, so the thread is idle, and the next request may have it)
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self.threads.give(executor)

    async def run_get_response(self, request: HttpRequest) -> HttpResponseBase:
        if _view_is_async(request):
            return await super().run_get_response(request)
        response = await sync_to_async(self._sync.get_response)(request)
        response._handler_class = self.__class__  # type: ignore[attr-defined]  # (as Django's does)
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
            content = response.streaming_content
            if isinstance(content, Iterator):  # a static file (WhiteNoise's middleware), a download
                response.streaming_content = _read_in_thread(content)
        return response


async def _read_in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A file's chunks, each read on the request's thread: the event loop never waits for the disk.

    Django would read the whole file into a list first, warning that it must (the file is a sync
    iterator), in the server's log once per process.
    """
    read = sync_to_async(lambda: next(chunks, None))
    while (chunk := await read()) is not None:
        yield chunk


def _view_is_async(request: HttpRequest) -> bool:
    """Whether the project's URLconf sends this path to an async view (which Django's path suits).

    A middleware may choose another URLconf (``request.urlconf``); the chain then resolves the path
    again and runs whatever it finds, an async view included (as under WSGI): correct either way.
    """
    try:
        match = get_resolver(settings.ROOT_URLCONF).resolve(request.path_info)
    except Resolver404:
        return False
    return iscoroutinefunction(match.func)


def get_asgi_application() -> Any:
    """What ``django.core.asgi.get_asgi_application`` returns, with the one-hop handler."""
    django.setup(set_prefix=False)
    return ASGIHandler()
