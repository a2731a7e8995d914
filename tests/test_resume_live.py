"""Resumable replies under every server (runserver on daphne and its WSGI mode, gunicorn gthread,
uvicorn), over real HTTP: a client that hangs up mid-reply (a reload, a dropped network) attaches again
with ``Last-Event-ID`` and gets the rest, with nothing lost or doubled; a second tab reads the same
reply live; the AI SDK's resume URL answers 204 when nothing streams; a reply that ended replays from
storage."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from streaming.providers.demo import REPLY
from tests.conftest import require
from tests.servers import KINDS, NEEDS, LiveServer, Received, available, running_server, stream_events

pytestmark = pytest.mark.servers

RATE = 40  # demo tokens per second
LONG = " ".join(f"word{n}" for n in range(80))  # about 3 s of reply at RATE


def demo_reply(message: str) -> str:
    return REPLY.format(words=" ".join(message.split()))


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    kind = request.param
    require(available(kind), f"{NEEDS[kind]} is not installed: cannot test under {kind}")
    env = {"STREAMING_DEMO_TOKENS_PER_SECOND": str(RATE), "STREAMING_HEARTBEAT_SECONDS": "0.5"}
    with running_server(kind, tmp_path_factory.mktemp(f"resume-{kind}"), env) as live:
        yield live


def until_tokens(events: Iterator[Received], count: int) -> list[Received]:
    received: list[Received] = []
    for event in events:
        received.append(event)
        if sum(r.type == "text-delta" for r in received) >= count:
            return received
    raise AssertionError("the stream ended early")


def text_of(received: list[Received]) -> str:
    return "".join(r.event["delta"] for r in received if r.type == "text-delta")


def attach(client: httpx.Client, message_id: str, after: int | None = None) -> list[Received]:
    headers = {} if after is None else {"Last-Event-ID": str(after)}
    with client.stream("GET", f"/api/messages/{message_id}/stream", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == "text/event-stream"
        return [r for r in stream_events(response, time.monotonic()) if r.type != "ping"]


def test_a_reload_mid_reply_gets_the_rest_with_nothing_lost_or_doubled(server: LiveServer) -> None:
    with server.log_on_failure(), server.client() as client:
        with client.stream("POST", "/api/chat", json={"message": LONG, "model": "demo:echo"}) as response:
            seen = until_tokens(stream_events(response, time.monotonic()), 10)
        # The connection is gone (a reload); the reply goes on, and the page comes back for it.
        message_id = seen[0].event["messageId"]
        last = seen[-1].id
        assert last is not None
        rest = attach(client, message_id, after=last)

    assert rest[0].id == last + 1  # the ids go on where the client left off
    assert [r.id for r in rest[:-1]] == list(range(last + 1, last + len(rest)))
    assert text_of(seen) + text_of(rest) == demo_reply(LONG)
    assert [r.type for r in rest][-3:] == ["finish-step", "finish", "[DONE]"]
    assert rest[-2].event["messageMetadata"]["status"] == "complete"


def test_a_second_tab_reads_the_same_reply_live(server: LiveServer) -> None:
    with server.log_on_failure(), server.client() as first, server.client() as second:
        with first.stream("POST", "/api/chat", json={"message": LONG, "model": "demo:echo"}) as response:
            events = stream_events(response, time.monotonic())
            opening = until_tokens(events, 3)
            with ThreadPoolExecutor(1) as pool:
                other = pool.submit(attach, second, opening[0].event["messageId"])
                mine = opening + list(events)
                theirs = other.result(timeout=30)
        conversation = opening[0].event["messageMetadata"]["conversationId"]
        assert second.get(f"/api/chat/{conversation}/stream").status_code == 204  # nothing streams now

    assert text_of(mine) == text_of(theirs) == demo_reply(LONG)
    assert [r.event for r in theirs] == [r.event for r in mine]  # from the first chunk, the same chunks


def test_the_ai_sdk_resume_url_streams_from_the_first_chunk(server: LiveServer) -> None:
    with server.log_on_failure(), server.client() as client, server.client() as other:
        body: dict[str, Any] = {"id": "chat-ab12CD34ef56", "messages": [], "trigger": "submit-message"}
        body["messages"] = [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": LONG}]}]
        with client.stream("POST", "/api/chat", json={**body, "model": "demo:echo"}) as response:
            until_tokens(stream_events(response, time.monotonic()), 2)
            with other.stream("GET", "/api/chat/chat-ab12CD34ef56/stream") as resumed:
                assert resumed.status_code == 200
                received = [r for r in stream_events(resumed, time.monotonic()) if r.type != "ping"]
        assert received[0].type == "start" and received[0].id == 0
        assert text_of(received) == demo_reply(LONG)
        assert other.get("/api/chat/chat-ab12CD34ef56/stream").status_code == 204
        assert other.get("/api/chat/somebody-elses/stream").status_code == 404
        # The client's own id works wherever a conversation id does.
        detail = other.get("/api/conversations/chat-ab12CD34ef56")
        assert detail.status_code == 200
        assert [m["role"] for m in detail.json()["messages"]] == ["user", "assistant"]


def test_a_reply_that_ended_replays_from_storage(server: LiveServer) -> None:
    with server.log_on_failure(), server.client() as client:
        with client.stream("POST", "/api/chat", json={"message": "Short", "model": "demo:echo"}) as response:
            live = [r for r in stream_events(response, time.monotonic()) if r.type != "ping"]
        replayed = attach(client, live[0].event["messageId"])
    assert text_of(replayed) == text_of(live)
    assert replayed[-2].event["messageMetadata"] == live[-2].event["messageMetadata"]  # usage, cost, times
