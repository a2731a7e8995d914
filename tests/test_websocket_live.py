"""``/ws/chat/`` under real ASGI servers (daphne through ``runserver``, and uvicorn) with a real
WebSocket client: frames arrive one at a time as the model writes, a stop frame stops the reply, a
client that hangs up gets its reply saved cancelled, and anonymous or cross-site sockets are refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from streaming.providers.demo import REPLY
from tests.conftest import require
from tests.servers import NEEDS, LiveServer, available, running_server
from tests.socket_client import ENDINGS, frames_until, open_socket, send

pytestmark = pytest.mark.servers

RATE = 40  # demo tokens per second
LONG = " ".join(f"word{n}" for n in range(100))  # the demo quotes it: a reply of about 4 s at RATE


def demo_reply(message: str) -> str:
    return REPLY.format(words=" ".join(message.split()))


@pytest.fixture(scope="module", params=["runserver", "uvicorn"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    kind = request.param
    require(available(kind), f"{NEEDS[kind]} is not installed: cannot test WebSockets under {kind}")
    env = {"STREAMING_DEMO_TOKENS_PER_SECOND": str(RATE), "STREAMING_DISCONNECT_GRACE_SECONDS": "0"}
    with running_server(kind, tmp_path_factory.mktemp(f"ws-{kind}"), env) as live:
        yield live


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def cookies(http: httpx.Client) -> dict[str, str]:
    return dict(http.cookies.items())


def chat(message: str) -> dict[str, Any]:
    return {"type": "chat", "message": message, "model": "demo:echo"}


def assistant_status(http: httpx.Client, conversation_id: str) -> str:
    messages = http.get(f"/api/conversations/{conversation_id}").json()["messages"]
    return str(messages[-1]["status"])


def test_frames_arrive_as_the_model_writes(server: LiveServer, http: httpx.Client) -> None:
    message = "Does each word get its own frame?"
    with server.log_on_failure(), open_socket(server.url, cookies(http)) as socket:
        sent = time.monotonic()
        send(socket, chat(message))
        frames = frames_until(socket, *ENDINGS)

    kinds = [frame["type"] for _, frame in frames]
    assert kinds[:3] == ["start", "start-step", "text-start"]
    assert kinds[-3:] == ["text-end", "finish-step", "finish"]
    deltas = [(at, frame) for at, frame in frames if frame["type"] == "text-delta"]
    assert "".join(frame["delta"] for _, frame in deltas) == demo_reply(message)
    assert frames[-1][1]["messageMetadata"]["status"] == "complete"
    # Unbuffered: the start frame comes before the provider's first token, and the words trickle in
    # over the reply's duration rather than in one burst at the end.
    assert frames[0][0] - sent < deltas[0][0] - sent
    assert deltas[-1][0] - deltas[0][0] > 0.5 * (len(deltas) - 1) / RATE
    conversation = frames[0][1]["messageMetadata"]["conversationId"]
    assert assistant_status(http, conversation) == "complete"


def test_a_stop_frame_stops_the_reply(server: LiveServer, http: httpx.Client) -> None:
    with server.log_on_failure(), open_socket(server.url, cookies(http)) as socket:
        send(socket, chat(LONG))
        opening = frames_until(socket, "text-delta")
        asked = time.monotonic()
        send(socket, {"type": "stop"})
        ending = frames_until(socket, *ENDINGS)
        # The socket stays open for the next reply.
        send(socket, chat("And now?"))
        after = frames_until(socket, *ENDINGS)

    assert ending[-1][0] - asked < 1.0
    assert [frame["type"] for _, frame in ending][-2:] == ["message-metadata", "abort"]
    assert ending[-2][1]["messageMetadata"]["status"] == "cancelled"
    assert after[-1][1]["messageMetadata"]["status"] == "complete"
    assert assistant_status(http, opening[0][1]["messageMetadata"]["conversationId"]) == "cancelled"


def test_a_client_that_hangs_up_gets_its_reply_saved_cancelled(
    server: LiveServer, http: httpx.Client
) -> None:
    with server.log_on_failure(), open_socket(server.url, cookies(http)) as socket:
        send(socket, chat(LONG))
        opening = frames_until(socket, "text-delta")
    conversation = opening[0][1]["messageMetadata"]["conversationId"]

    deadline = time.monotonic() + 5
    while (status := assistant_status(http, conversation)) == "streaming" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status == "cancelled"


def test_an_anonymous_socket_is_closed_with_4401(server: LiveServer) -> None:
    with (
        server.log_on_failure(),
        open_socket(server.url) as socket,
        pytest.raises(ConnectionClosed) as closed,
    ):
        socket.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


@pytest.mark.parametrize("origin", ["http://evil.example", None])
def test_a_socket_from_another_site_is_refused(
    server: LiveServer, http: httpx.Client, origin: str | None
) -> None:
    with server.log_on_failure(), pytest.raises(InvalidStatus) as refused:
        open_socket(server.url, cookies(http), origin=origin)
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("other", ["http://127.0.0.1:9999", "https://{host}"])
def test_another_scheme_or_port_of_the_host_is_closed_with_4403(
    server: LiveServer, http: httpx.Client, other: str
) -> None:
    """The host is allowed (channels' validator lets it through), but the page's origin is not the
    site's: another port or scheme of a host may be another site."""
    origin = other.format(host=server.url.removeprefix("http://"))
    with (
        server.log_on_failure(),
        open_socket(server.url, cookies(http), origin=origin) as socket,
        pytest.raises(ConnectionClosed) as closed,
    ):
        send(socket, chat("Hello?"))
        socket.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403
