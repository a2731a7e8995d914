"""The same views stream unbuffered under every supported server, and a client that goes away stops
the reply: runserver with daphne (ASGI), runserver --noasgi (WSGI), gunicorn gthread (WSGI), uvicorn
(ASGI), each a real process on 127.0.0.1 (see ``tests/servers.py``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from streaming.events import estimate_tokens
from streaming.providers.demo import REPLY, split_tokens
from tests.conftest import require
from tests.servers import KINDS, NEEDS, LiveServer, Received, available, running_server, stream_events

pytestmark = pytest.mark.servers

RATE = 40  # demo tokens per second: slow enough to see every token arrive on its own
SHORT = "Does this arrive a word at a time?"
# The demo quotes the message, so a long message makes a long reply (about 4 s at RATE).
LONG = " ".join(f"word{n}" for n in range(100))


def demo_reply(message: str) -> str:
    return REPLY.format(words=" ".join(message.split()))


def serve(
    kind: str, tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]
) -> AbstractContextManager[LiveServer]:
    require(available(kind), f"{NEEDS[kind]} is not installed: cannot test under {kind}")
    return running_server(kind, tmp_path_factory.mktemp(kind), env)


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # No grace: a client that hangs up ends its reply at once (tests/test_resume_live.py has the grace).
    env = {"STREAMING_DEMO_TOKENS_PER_SECOND": str(RATE), "STREAMING_DISCONNECT_GRACE_SECONDS": "0"}
    with serve(request.param, tmp_path_factory, env) as live:
        yield live


@pytest.fixture(params=KINDS)
def quiet_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The demo provider says nothing for 3 s before its first token; heartbeats every 0.3 s meanwhile."""
    env = {
        "STREAMING_DEMO_TOKENS_PER_SECOND": str(RATE),
        "STREAMING_DEMO_FIRST_TOKEN_DELAY": "3",
        "STREAMING_HEARTBEAT_SECONDS": "0.3",
        "STREAMING_DISCONNECT_GRACE_SECONDS": "0",
    }
    with serve(request.param, tmp_path_factory, env) as live:
        yield live


def chat(client: httpx.Client, message: str, **kwargs: Any) -> AbstractContextManager[httpx.Response]:
    return client.stream("POST", "/api/chat", json={"message": message, "model": "demo:echo"}, **kwargs)


def by_type(received: list[Received], kind: str) -> list[Received]:
    return [r for r in received if r.type == kind]


def text_of(received: list[Received]) -> str:
    return "".join(r.event["delta"] for r in by_type(received, "text-delta"))


def assert_sse_headers(server: LiveServer, headers: httpx.Headers) -> None:
    assert headers["content-type"] == "text/event-stream"
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"
    assert headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert "content-length" not in headers
    if server.asgi:
        # ASGI servers pass the application's headers through: a Connection header would be ours.
        assert "connection" not in headers
    else:
        # A WSGI server owns Connection (runserver says "close", gunicorn "keep-alive"); wsgiref refuses
        # one from the application and gunicorn drops it, so the one on the wire is the server's.
        assert len(headers.get_list("connection")) == 1


def test_reply_streams_unbuffered(server: LiveServer) -> None:
    """Each token reaches the client when the provider yields it, not when the reply is done."""
    expected = demo_reply(SHORT)
    tokens = len(split_tokens(expected))
    with server.log_on_failure(), server.client() as client:
        started = time.monotonic()
        with chat(client, SHORT) as response:
            assert response.status_code == 200, response.read()
            assert_sse_headers(server, response.headers)
            received = list(stream_events(response, started))

        assert received[0].type == "start"
        assert received[-1].event == "[DONE]"
        (finish,) = by_type(received, "finish")
        assert finish.event["messageMetadata"]["status"] == "complete"
        assert text_of(received) == expected

        deltas = by_type(received, "text-delta")
        # The first token is on screen long before the last: ~1.5 s of tokens at RATE per second.
        assert deltas[0].at < 0.4 * finish.at, (deltas[0].at, finish.at)
        assert deltas[-1].at - deltas[0].at > 0.5 * (tokens - 1) / RATE
        # Many network reads, not one blob at the end.
        assert len({r.read for r in deltas}) >= 10


def wait_for_outcome(client: httpx.Client, conversation_id: str, timeout: float = 3.0) -> dict[str, Any]:
    """Poll the conversation until its reply is no longer ``streaming``; return the reply."""
    deadline = time.monotonic() + timeout
    while True:
        detail = client.get(f"/api/conversations/{conversation_id}")
        assert detail.status_code == 200, detail.text
        reply = detail.json()["messages"][-1]
        assert reply["role"] == "assistant"
        if reply["status"] != "streaming" or time.monotonic() > deadline:
            return dict(reply)
        time.sleep(0.05)


def read_until(response: httpx.Response, started: float, done: Any) -> list[Received]:
    """Read events until ``done(received)`` holds; the caller then hangs up."""
    received: list[Received] = []
    for event in stream_events(response, started):
        received.append(event)
        assert event.type not in ("finish", "[DONE]"), "the reply ended before the client hung up"
        if done(received):
            return received
    raise AssertionError(f"the stream ended early: {[r.type for r in received]}")


def assert_unchanged(
    client: httpx.Client, conversation_id: str, reply: dict[str, Any], seconds: float
) -> None:
    """Nothing touches a settled reply any more: the provider stopped and nobody saves over it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert wait_for_outcome(client, conversation_id) == reply
        time.sleep(0.1)


def test_disconnect_cancels_the_reply(server: LiveServer) -> None:
    """A client that hangs up mid-reply stops it within about a second; the partial reply is kept."""
    full = demo_reply(LONG)
    with server.log_on_failure(), server.client() as client:
        started = time.monotonic()
        with chat(client, LONG) as response:
            received = read_until(response, started, lambda got: len(by_type(got, "text-delta")) >= 5)
            hung_up = time.monotonic() - started
        conversation_id = received[0].event["messageMetadata"]["conversationId"]
        reply = wait_for_outcome(client, conversation_id)

        assert reply["status"] == "cancelled", reply
        seen, saved = text_of(received), reply["content"]
        assert saved.startswith(seen)
        assert full.startswith(saved)
        assert len(saved) < len(full)
        # The server noticed within about a second (its own clock: the reply's duration), and made
        # no more than about a second of tokens after the client had gone.
        stopped_at = received[0].at + reply["duration_ms"] / 1000
        assert stopped_at - hung_up < 1.0, (stopped_at, hung_up)
        assert len(split_tokens(saved)) - len(split_tokens(seen)) <= RATE
        usage = reply["usage"]
        assert usage is not None
        assert usage["estimated"] is True
        assert usage["input_tokens"] > 0
        assert 0 < usage["output_tokens"] < estimate_tokens(full)
        assert_unchanged(client, conversation_id, reply, seconds=0.5)


def test_disconnect_while_the_provider_is_quiet(quiet_server: LiveServer) -> None:
    """Heartbeats flow while the model thinks; a client gone meanwhile is noticed at the next one
    (under WSGI a gone client shows only when a write fails), not when the first token comes."""
    server = quiet_server
    with server.log_on_failure(), server.client() as client:
        started = time.monotonic()
        with chat(client, SHORT, timeout=httpx.Timeout(10, read=2)) as response:
            received = read_until(response, started, lambda got: len(by_type(got, "ping")) >= 2)
            hung_up = time.monotonic() - started
        assert [r.type for r in received] == ["start", "start-step", "ping", "ping"]
        assert hung_up < 1.5  # heartbeats, every 0.3 s, while the first token is 3 s away
        conversation_id = received[0].event["messageMetadata"]["conversationId"]
        reply = wait_for_outcome(client, conversation_id)

        assert reply["status"] == "cancelled", reply
        assert reply["content"] == ""
        stopped_at = received[0].at + reply["duration_ms"] / 1000
        assert stopped_at - hung_up < 1.5, (stopped_at, hung_up)
        assert stopped_at < 2.5  # long before the first token would have come
        assert_unchanged(client, conversation_id, reply, seconds=0.3)
