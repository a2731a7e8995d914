"""Cancel really stops paying, end to end: a real provider SDK behind a real server (gunicorn for the WSGI
path, uvicorn for the ASGI path) talks to the fake upstream in this process. When the browser asks the
reply to stop, the fake upstream sees its connection closed within about a second; when the browser
hangs up and nobody attaches to the reply again, once its grace period is over. The partial reply is
saved ``cancelled``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import require
from tests.fake_upstream import VENDORS, FakeUpstream, Hold, Reply, Vendor
from tests.servers import NEEDS, LiveServer, Received, available, running_server, stream_events

pytestmark = pytest.mark.servers

KEY = "sk-test-SECRET-1234567890"
PROMPT = 1.0  # how soon the upstream must see the hang-up, in seconds
GRACE = 1.5  # how long a reply whose client left waits for a reader
MODELS = {
    "openai": "openai:gpt-4.1-mini",
    "anthropic": "anthropic:claude-haiku-4-5",
    "gemini": "gemini:gemini-2.5-flash",
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture(scope="module", params=["gunicorn", "uvicorn"])
def server(
    request: pytest.FixtureRequest, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    kind = request.param
    require(available(kind), f"{NEEDS[kind]} is not installed: cannot test under {kind}")
    env = {
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": upstream.url + "/v1",
        "ANTHROPIC_API_KEY": KEY,
        "ANTHROPIC_BASE_URL": upstream.url,
        "GEMINI_API_KEY": KEY,
        "GOOGLE_GEMINI_BASE_URL": upstream.url,
        "STREAMING_MODELS": ",".join(MODELS.values()),
        # Under WSGI a client that left shows only when a write fails: heartbeats are those writes.
        "STREAMING_HEARTBEAT_SECONDS": "0.3",
        "STREAMING_DISCONNECT_GRACE_SECONDS": str(GRACE),
    }
    with running_server(kind, tmp_path_factory.mktemp(kind), env) as live:
        yield live


@pytest.fixture(params=VENDORS, ids=lambda vendor: vendor.name)
def vendor(request: pytest.FixtureRequest, upstream: FakeUpstream) -> Vendor:
    upstream.replies.clear()
    # The model says "Hel", then keeps the stream open and says nothing for a long time.
    upstream.enqueue(Reply.stream([*request.param.partial("Hel"), Hold(20.0)]))
    return request.param  # type: ignore[no-any-return]


def read_first_token(response: httpx.Response, started: float) -> tuple[list[Received], Iterator[Received]]:
    assert response.status_code == 200, response.read()
    events = stream_events(response, started)
    received: list[Received] = []
    for event in events:
        received.append(event)
        if event.type == "text-delta":
            assert event.event["delta"] == "Hel"
            return received, events
        assert event.type in ("start", "start-step", "ping", "text-start"), received
    raise AssertionError(f"the stream ended before the first token: {[r.type for r in received]}")


def saved_reply(client: httpx.Client, conversation_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5.0
    while True:
        reply: dict[str, Any] = client.get(f"/api/conversations/{conversation_id}").json()["messages"][-1]
        if reply["status"] != "streaming" or time.monotonic() > deadline:
            return reply
        time.sleep(0.05)


def assert_upstream_hung_up(upstream: FakeUpstream, since: float, *, later: float = 0.0) -> None:
    record = upstream.last
    assert record.hung_up.wait(5.0 + later), "the provider's upstream connection was never closed"
    assert record.hung_up_at is not None
    assert later <= record.hung_up_at - since < later + PROMPT, record.hung_up_at - since
    assert not record.finished


def post_chat(client: httpx.Client, vendor: Vendor) -> Any:
    return client.stream("POST", "/api/chat", json={"message": "Hi", "model": MODELS[vendor.name]})


def test_client_hangs_up_and_nobody_comes_back(
    server: LiveServer, upstream: FakeUpstream, vendor: Vendor
) -> None:
    with server.log_on_failure(), server.client() as client:
        started = time.monotonic()
        with post_chat(client, vendor) as response:
            received, _ = read_first_token(response, started)
            since = time.monotonic()  # leaving the block closes the connection
        # The reply waits for a reader (a reload) for its grace period, then stops paying.
        assert not upstream.last.hung_up.wait(GRACE * 0.6)
        assert_upstream_hung_up(upstream, since, later=GRACE)
        reply = saved_reply(client, received[0].event["messageMetadata"]["conversationId"])
        assert (reply["status"], reply["content"]) == ("cancelled", "Hel")
        assert reply["model"] == MODELS[vendor.name]


def test_stop_request(server: LiveServer, upstream: FakeUpstream, vendor: Vendor) -> None:
    with server.log_on_failure(), server.client() as client, server.client() as other_tab:
        started = time.monotonic()
        with post_chat(client, vendor) as response:
            received, rest = read_first_token(response, started)
            since = time.monotonic()
            stopped = other_tab.post(f"/api/messages/{received[0].event['messageId']}/stop")
            assert stopped.status_code == 202, stopped.text
            after = [event for event in rest if event.type != "ping"]
        assert_upstream_hung_up(upstream, since)
        # An explicit stop ends with the metadata, then ``abort``.
        assert [event.type for event in after] == ["text-end", "message-metadata", "abort", "[DONE]"]
        assert after[1].event["messageMetadata"]["status"] == "cancelled"
        assert after[2].event == {"type": "abort", "reason": "stopped"}
        reply = saved_reply(client, received[0].event["messageMetadata"]["conversationId"])
        assert (reply["status"], reply["content"]) == ("cancelled", "Hel")


def test_stop_before_the_model_answers(server: LiveServer, upstream: FakeUpstream, vendor: Vendor) -> None:
    """The model has not sent its response headers yet (thinking, or queued): a stop ends the upstream
    call at once, under WSGI (a blocked thread) as under ASGI, not when the model finally answers."""
    upstream.replies.clear()
    upstream.enqueue(Reply(body=[*vendor.partial("Hel"), Hold(20.0)], delay=20.0))
    before = len(upstream.requests)
    with server.log_on_failure(), server.client() as client, server.client() as other_tab:
        started = time.monotonic()
        with post_chat(client, vendor) as response:
            assert response.status_code == 200
            events = stream_events(response, started)
            opening = next(events)
            assert opening.type == "start"  # (it leaves before the provider is called)
            while len(upstream.requests) == before:
                time.sleep(0.01)
            since = time.monotonic()
            stopped = other_tab.post(f"/api/messages/{opening.event['messageId']}/stop")
            assert stopped.status_code == 202, stopped.text
            after = [event.type for event in events if event.type != "ping"]
        assert_upstream_hung_up(upstream, since)
        assert after[-3:] == ["message-metadata", "abort", "[DONE]"]
        reply = saved_reply(client, opening.event["messageMetadata"]["conversationId"])
        assert (reply["status"], reply["content"]) == ("cancelled", "")
