"""``streaming.asgi``: Django's ASGI handler, with a sync view's whole middleware chain in one thread hop.

Requests are driven in process through the ASGI interface (scope, receive, send), against the test
settings' middleware; ``tests/test_servers.py`` runs the same handler under uvicorn and daphne.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from asgiref.sync import SyncToAsync
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from django.urls import include, path
from django.utils.deprecation import MiddlewareMixin

from streaming.asgi import REUSES_THREADS, ASGIHandler
from streaming.events import Finish, TextDelta, Usage
from streaming.providers.scripted import Pause, ScriptedProvider
from tests.sse import parse_events, text_of, types

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.test_asgi")]

threads_seen: list[tuple[str, threading.Thread]] = []  # (the threads themselves: an ended one's id is reused)


class RecordThreads(MiddlewareMixin):
    """A middleware written as Django's own are (sync and async capable): notes the thread of each half."""

    def process_request(self, request: HttpRequest) -> None:
        threads_seen.append(("request", threading.current_thread()))

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        threads_seen.append(("response", threading.current_thread()))
        return response


def sync_view(request: HttpRequest) -> HttpResponse:
    threads_seen.append(("view", threading.current_thread()))
    return HttpResponse("sync")


async def async_view(request: HttpRequest) -> HttpResponse:
    threads_seen.append(("view", threading.current_thread()))
    return JsonResponse({"view": "async"})


def failing_view(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in a view")


both_in_views = threading.Barrier(2, timeout=5)


def waiting_view(request: HttpRequest) -> HttpResponse:
    """Returns once another request is inside this view too: two requests at once need two threads."""
    threads_seen.append(("view", threading.current_thread()))
    both_in_views.wait()
    return HttpResponse("together")


urlpatterns = [
    path("sync", sync_view),
    path("async", async_view),
    path("fails", failing_view),
    path("together", waiting_view),
    path("", include("streaming.urls")),
]


@dataclass
class Answer:
    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    parts: list[bytes] = field(default_factory=list)  # the body, as sent: one item per send()

    @property
    def body(self) -> bytes:
        return b"".join(self.parts)


async def call(
    app: Any, method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> Answer:
    """One request through an ASGI application, as a server would make it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": url,
        "raw_path": url.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")]
        + [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    answer = Answer()
    finished = asyncio.Event()
    sent_body = False

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = dict(message["headers"])
        elif message.get("body"):
            answer.parts.append(message["body"])
        if message["type"] == "http.response.body" and not message.get("more_body"):
            finished.set()

    await app(scope, receive, send)
    return answer


@pytest.fixture
def handlers(settings: Any) -> dict[str, Any]:
    # The test settings' middleware (Django's own, sync and async capable), and one that notes threads.
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.test_asgi.RecordThreads"]
    return {"streaming": ASGIHandler(), "django": DjangoASGIHandler()}


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the sync functions run through ``sync_to_async``: each is a hop to a thread and back."""
    made: list[str] = []
    call_through = SyncToAsync.__call__

    async def counted(self: SyncToAsync[Any, Any], *args: Any, **kwargs: Any) -> Any:
        made.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await call_through(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    threads_seen.clear()
    yield made


@pytest.fixture
def session(user: Any) -> dict[str, str]:
    """The headers of a logged-in browser tab: session cookie, CSRF cookie and header."""
    client = Client()
    client.force_login(user)
    token = _get_new_csrf_string()
    return {
        "Cookie": f"sessionid={client.cookies['sessionid'].value}; csrftoken={token}",
        "X-CSRFToken": token,
        "Content-Type": "application/json",
    }


def test_a_sync_view_and_its_middleware_run_in_one_hop(
    handlers: dict[str, Any], hops: list[str], settings: Any
) -> None:
    answer = asyncio.run(call(handlers["streaming"], "GET", "/sync"))
    assert (answer.status, answer.body) == (200, b"sync")
    # Django's request_started signal, the whole chain (every middleware and the view), the response's close.
    assert len(hops) == 3, hops
    assert [stage for stage, _ in threads_seen] == ["request", "view", "response"]
    assert len({thread for _, thread in threads_seen}) == 1
    assert threads_seen[0][1] is not threading.current_thread()  # not the event loop's thread

    threads_seen.clear()
    hops.clear()
    django_answer = asyncio.run(call(handlers["django"], "GET", "/sync"))
    assert (django_answer.status, django_answer.body) == (200, b"sync")
    assert len(hops) > 3 + len(settings.MIDDLEWARE)  # Django's own: a hop per middleware half, and the view's


@pytest.mark.skipif(not REUSES_THREADS, reason="asgiref before 3.13 has no executor for a request's thread")
def test_a_requests_thread_is_kept_for_the_next_request(handlers: dict[str, Any], hops: list[str]) -> None:
    async def one_after_another() -> list[Answer]:
        return [await call(handlers["streaming"], "GET", "/sync") for _ in range(3)]

    assert [answer.body for answer in asyncio.run(one_after_another())] == [b"sync"] * 3
    views = [thread for stage, thread in threads_seen if stage == "view"]
    assert len(views) == 3 and len(set(views)) == 1


def test_requests_at_once_run_in_threads_of_their_own(handlers: dict[str, Any], hops: list[str]) -> None:
    async def together() -> list[Answer]:
        app = handlers["streaming"]
        return list(await asyncio.gather(call(app, "GET", "/together"), call(app, "GET", "/together")))

    assert [answer.body for answer in asyncio.run(together())] == [
        b"together"
    ] * 2  # (one thread: a deadlock)
    views = [thread for stage, thread in threads_seen if stage == "view"]
    assert len(set(views)) == 2


def test_an_async_view_keeps_djangos_path_on_the_event_loop(
    handlers: dict[str, Any], hops: list[str]
) -> None:
    loop_thread = threading.current_thread()  # asyncio.run runs the loop in this thread
    answer = asyncio.run(call(handlers["streaming"], "GET", "/async"))
    assert (answer.status, answer.body) == (200, b'{"view": "async"}')
    assert ("view", loop_thread) in threads_seen


@pytest.mark.parametrize(
    ("method", "url", "logged_in", "body"),
    [
        ("GET", "/nowhere", False, b""),  # 404 from the URL resolver
        ("GET", "/fails", False, b""),  # 500 from an exception in a view
        ("GET", "/api/models", False, b""),  # 401 as JSON, not a redirect
        ("GET", "/api/models", True, b""),  # 200
        ("DELETE", "/api/models", True, b""),  # 405 with Allow
        ("POST", "/api/chat", True, b"{not json"),  # 400
        ("GET", "/", False, b""),  # the chat page's redirect to the login page
    ],
)
def test_answers_are_the_ones_djangos_handler_gives(
    handlers: dict[str, Any], session: dict[str, str], method: str, url: str, logged_in: bool, body: bytes
) -> None:
    headers = session if logged_in else {}
    ours = asyncio.run(call(handlers["streaming"], method, url, headers, body))
    theirs = asyncio.run(call(handlers["django"], method, url, headers, body))
    assert (ours.status, ours.body) == (theirs.status, theirs.body)
    assert ours.headers == theirs.headers


def test_a_csrf_failure_is_the_apis_json_403(handlers: dict[str, Any], session: dict[str, str]) -> None:
    forged = {**session, "X-CSRFToken": _get_new_csrf_string()}
    answer = asyncio.run(call(handlers["streaming"], "POST", "/api/chat", forged, b'{"message": "Hi"}'))
    assert answer.status == 403
    error = orjson.loads(answer.body)["error"]
    assert error["code"] == "forbidden"
    assert error["message"].startswith(
        "CSRF check failed: CSRF token from the 'X-Csrftoken' HTTP header incorrect. "
    )


def test_the_chat_stream_leaves_in_parts(
    handlers: dict[str, Any], session: dict[str, str], settings: Any
) -> None:
    settings.STREAMING = {
        "PROVIDERS": {"scripted": {"BACKEND": "streaming.providers.scripted.ScriptedProvider"}},
        "MODELS": ["scripted:model-a"],
    }
    ScriptedProvider.enqueue([TextDelta("Hel"), Pause(0.05), TextDelta("lo"), Usage(3, 2), Finish()])
    body = b'{"message": "Hi", "model": "scripted:model-a"}'
    answer = asyncio.run(call(handlers["streaming"], "POST", "/api/chat", session, body))
    assert answer.status == 200
    assert answer.headers[b"Content-Type"] == b"text/event-stream"
    events = parse_events(answer.body)
    assert types(events)[:2] == ["start", "start-step"]
    assert text_of(events) == "Hello"
    assert events[-1] == "[DONE]"
    assert len(answer.parts) >= 4  # start, "Hel", "lo" after the pause, the end: not one buffered body
    assert b'"start"' in answer.parts[0] and b"Hel" not in answer.parts[0]
