"""The WebSocket transport (``/ws/chat/``) through the demo project's ASGI routing, with channels'
``WebsocketCommunicator``: the SSE stream's chunks one per frame, stops, errors, authentication,
origin checks and disconnects. ``tests/test_websocket_live.py`` runs it under real servers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from project.asgi import application
from streaming import consumers, services
from streaming.events import Finish, TextDelta, Usage
from streaming.exceptions import MessageTooLong, RateLimited
from streaming.models import Conversation, Message
from streaming.providers.scripted import Pause, ScriptedProvider
from tests import replies
from tests.sse import parse_events, types

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://testserver")
HOST = (b"host", b"testserver")  # (a browser sends both: the page's origin, and the host it connects to)
CHAT = {"type": "chat", "message": "Hi", "model": "scripted:model-a"}
ENDINGS = ("finish", "abort")


def session_headers(user: Any) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    return [ORIGIN, HOST, (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


def run(scenario: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a scenario on an event loop of its own, then wait for its replies to be saved."""
    result = asyncio.run(scenario())
    replies.settle()
    return result


async def connected(headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    ok, _ = await socket.connect()
    assert ok
    return socket


async def frames_until_end(socket: WebsocketCommunicator, timeout: float = 3) -> list[dict[str, Any]]:
    """The frames of one reply, up to its last chunk (``finish``, or ``abort`` after a stop)."""
    frames = [await socket.receive_json_from(timeout)]
    while frames[-1]["type"] not in ENDINGS:
        frames.append(await socket.receive_json_from(timeout))
    return frames


async def frames_until(socket: WebsocketCommunicator, kind: str) -> list[dict[str, Any]]:
    frames = [await socket.receive_json_from(3)]
    while frames[-1]["type"] != kind:
        frames.append(await socket.receive_json_from(3))
    return frames


def test_a_reply_arrives_as_the_sse_chunks_one_per_frame(user: Any, api: Client) -> None:
    # (a pause: tokens that arrive together would be merged, at a moment that depends on timing)
    script: list[Any] = [
        TextDelta("Hel"),
        Pause(0.05),
        TextDelta("lo"),
        Usage(input_tokens=7, output_tokens=2),
    ]
    script.append(Finish())
    ScriptedProvider.enqueue(script)
    ScriptedProvider.enqueue(script)
    headers = session_headers(user)

    async def scenario() -> list[dict[str, Any]]:
        socket = await connected(headers)
        await socket.send_json_to(CHAT)
        frames = await frames_until_end(socket)
        assert await socket.receive_nothing(0.2)  # no [DONE], no heartbeat
        await socket.disconnect()
        return frames

    frames = run(scenario)
    response: Any = api.post("/api/chat", CHAT, content_type="application/json")
    sse = parse_events(b"".join(response.streaming_content))

    assert types(frames) == types(sse)[:-1]  # the same chunks, without [DONE]
    variable = ("messageId", "messageMetadata")
    assert [{k: v for k, v in f.items() if k not in variable} for f in frames] == [
        {k: v for k, v in e.items() if k not in variable} for e in sse[:-1]
    ]
    first = Message.objects.filter(role="assistant").order_by("created_at").first()
    assert first is not None
    assert frames[0]["messageId"] == str(first.id)
    assert frames[0]["messageMetadata"]["conversationId"] == str(first.conversation_id)
    assert frames[-1]["messageMetadata"]["status"] == "complete"
    assert frames[-1]["messageMetadata"]["usage"]["inputTokens"] == 7
    assert (first.status, first.content) == ("complete", "Hello")
    assert first.usage.count() == 1


def test_a_use_chat_body_works_too(user: Any) -> None:
    conversation_id = str(uuid.uuid4())
    body = {
        "type": "chat",
        "id": conversation_id,
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "From useChat"}]}],
        "trigger": "submit-message",
        "model": "scripted:model-a",
    }
    headers = session_headers(user)

    async def scenario() -> list[dict[str, Any]]:
        socket = await connected(headers)
        await socket.send_json_to(body)
        frames = await frames_until_end(socket)
        await socket.disconnect()
        return frames

    frames = run(scenario)
    assert frames[0]["messageMetadata"]["conversationId"] == conversation_id
    assert Message.objects.get(role="user").content == "From useChat"


def test_heartbeats_are_not_sent(user: Any, settings: Any) -> None:
    settings.STREAMING = {**settings.STREAMING, "HEARTBEAT_SECONDS": 0.05}
    ScriptedProvider.enqueue([Pause(0.3), TextDelta("late"), Finish()])
    headers = session_headers(user)

    async def scenario() -> list[dict[str, Any]]:
        socket = await connected(headers)
        await socket.send_json_to(CHAT)
        frames = await frames_until_end(socket)
        await socket.disconnect()
        return frames

    kinds = types(run(scenario))
    assert kinds == ["start", "start-step", "text-start", "text-delta", "text-end", "finish-step", "finish"]


def test_stop_ends_the_reply_and_keeps_it_as_cancelled(user: Any) -> None:
    ScriptedProvider.enqueue([TextDelta("Partial "), Pause(5), TextDelta("never")])
    headers = session_headers(user)

    async def scenario() -> tuple[list[dict[str, Any]], float]:
        socket = await connected(headers)
        await socket.send_json_to(CHAT)
        await frames_until(socket, "text-delta")
        asked = time.monotonic()
        await socket.send_json_to({"type": "stop"})
        frames = await frames_until_end(socket)
        took = time.monotonic() - asked
        await socket.disconnect()
        return frames, took

    frames, took = run(scenario)
    assert took < 1.0
    assert types(frames) == ["text-end", "message-metadata", "abort"]
    assert frames[-1] == {"type": "abort", "reason": "stopped"}
    assert frames[1]["messageMetadata"]["status"] == "cancelled"
    assert frames[1]["messageMetadata"]["usage"]["estimated"] is True
    message = Message.objects.get(role="assistant")
    assert (message.status, message.content, message.error_code) == ("cancelled", "Partial ", "stopped")
    assert ScriptedProvider.calls[0].closed_early


def test_a_stop_sent_with_the_chat_stops_it_once_it_starts(user: Any) -> None:
    ScriptedProvider.enqueue([Pause(5), TextDelta("never")])
    headers = session_headers(user)

    async def scenario() -> list[dict[str, Any]]:
        socket = await connected(headers)
        await socket.send_json_to(CHAT)
        await socket.send_json_to({"type": "stop"})  # before the reply has its message id
        frames = await frames_until_end(socket)
        await socket.disconnect()
        return frames

    frames = run(scenario)
    assert types(frames) == ["start", "start-step", "message-metadata", "abort"]
    assert Message.objects.get(role="assistant").status == "cancelled"


def test_a_new_reply_can_follow_on_the_same_socket(user: Any) -> None:
    headers = session_headers(user)

    async def scenario() -> list[list[dict[str, Any]]]:
        socket = await connected(headers)
        await socket.send_json_to(CHAT)
        first = await frames_until_end(socket)
        conversation = first[0]["messageMetadata"]["conversationId"]
        await socket.send_json_to({**CHAT, "conversation": conversation, "message": "Again"})
        second = await frames_until_end(socket)
        await socket.disconnect()
        return [first, second]

    _, second = run(scenario)
    assert second[-1]["messageMetadata"]["status"] == "complete"
    assert Conversation.objects.get().messages.count() == 4


def test_error_frames_carry_the_field_and_retry_after() -> None:
    assert consumers.error_frame(MessageTooLong("Too long.", field="message")) == {
        "type": "error",
        "errorText": "Too long.",
        "code": "message_too_long",
        "field": "message",
    }
    assert consumers.error_frame(RateLimited(retry_after=2.4))["retryAfter"] == 2


def error_of(frame: dict[str, Any]) -> tuple[str, str | None]:
    assert frame["type"] == "error" and frame["errorText"]
    return frame["code"], frame.get("field")


def test_requests_refused_before_the_stream_get_an_error_frame_and_the_socket_stays_open(
    user: Any, other_user: Any, settings: Any
) -> None:
    settings.STREAMING = {**settings.STREAMING, "MAX_MESSAGE_CHARS": 10}
    theirs = Conversation.objects.create(owner=other_user, model="scripted:model-a")
    headers = session_headers(user)

    async def scenario() -> list[tuple[str, str | None]]:
        socket = await connected(headers)
        refused = []
        for frame in (
            "not json",
            "[1, 2]",
            '{"type": "dance"}',
            '{"type": "chat"}',
            '{"type": "chat", "message": "Hi", "model": "openai:gpt-9"}',
            '{"type": "chat", "message": "Far too long for the limit", "model": "scripted:model-a"}',
            f'{{"type": "chat", "message": "Hi", "conversation": "{theirs.id}"}}',
            '{"type": "stop"}',
        ):
            await socket.send_to(text_data=frame)
            refused.append(error_of(await socket.receive_json_from()))
        await socket.send_to(bytes_data=b'{"type": "chat", "message": "Bytes", "model": "scripted:model-a"}')
        frames = await frames_until_end(socket)
        assert frames[-1]["messageMetadata"]["status"] == "complete"
        await socket.disconnect()
        return refused

    assert run(scenario) == [
        ("invalid_request", None),
        ("invalid_request", None),
        ("invalid_request", "type"),
        ("invalid_request", "message"),
        ("invalid_request", "model"),
        ("message_too_long", "message"),
        ("not_found", None),
        ("not_streaming", None),
    ]
    assert Message.objects.filter(conversation=theirs).count() == 0


def test_one_reply_at_a_time(user: Any) -> None:
    ScriptedProvider.enqueue([TextDelta("Slow "), Pause(0.5), TextDelta("reply"), Finish()])
    headers = session_headers(user)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        socket = await connected(headers)
        other = await connected(headers)
        await socket.send_json_to(CHAT)
        frames = await frames_until(socket, "text-delta")
        conversation = frames[0]["messageMetadata"]["conversationId"]
        await socket.send_json_to(CHAT)  # a second reply on the same socket
        same_socket = await socket.receive_json_from()
        await other.send_json_to({**CHAT, "conversation": conversation})  # the same conversation elsewhere
        same_conversation = await other.receive_json_from()
        rest = await frames_until_end(socket)
        await socket.disconnect()
        await other.disconnect()
        return same_socket, same_conversation, rest

    same_socket, same_conversation, rest = run(scenario)
    assert error_of(same_socket) == ("reply_in_progress", None)
    assert error_of(same_conversation) == ("reply_in_progress", None)
    assert rest[-1]["messageMetadata"]["status"] == "complete"
    assert Message.objects.get(role="assistant").content == "Slow reply"


def test_a_socket_without_a_logged_in_user_is_closed_with_4401() -> None:
    async def scenario() -> dict[str, Any]:
        socket = WebsocketCommunicator(application, "/ws/chat/", headers=[ORIGIN, HOST])
        ok, _ = await socket.connect()
        assert ok  # accepted, so that the close code reaches the browser
        closed = await socket.receive_output()
        await socket.send_json_to(CHAT)  # ignored
        assert await socket.receive_nothing(0.2)
        await socket.wait()
        return closed

    assert run(scenario) == {"type": "websocket.close", "code": 4401}
    assert not Message.objects.exists()


@pytest.mark.parametrize("origin", [b"http://evil.example", None])
def test_a_page_of_another_site_cannot_connect(user: Any, origin: bytes | None) -> None:
    cookie = session_headers(user)[2]
    headers = [HOST, cookie] if origin is None else [(b"origin", origin), HOST, cookie]

    async def scenario() -> bool:
        socket = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
        ok, _ = await socket.connect()
        await socket.wait()
        return bool(ok)

    assert run(scenario) is False


def test_a_client_that_goes_away_stops_the_reply_and_it_is_saved_as_cancelled(
    user: Any, settings: Any
) -> None:
    settings.STREAMING = {**settings.STREAMING, "DISCONNECT_GRACE_SECONDS": 0}
    ScriptedProvider.enqueue([TextDelta("Partial "), Pause(5), TextDelta("never")])
    headers = session_headers(user)

    async def scenario() -> None:
        socket = await connected(headers)
        await socket.send_json_to(CHAT)
        await frames_until(socket, "text-delta")
        await socket.disconnect(code=1001)

    run(scenario)
    message = Message.objects.get(role="assistant")
    assert (message.status, message.content, message.error_code) == ("cancelled", "Partial ", "disconnected")
    assert ScriptedProvider.calls[0].closed_early


def test_a_client_that_goes_away_while_the_reply_starts_leaves_nothing_streaming(
    user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_start = services.start_reply

    def slow_start(*args: Any) -> Any:
        reply = real_start(*args)
        time.sleep(0.3)
        return reply

    monkeypatch.setattr(services, "start_reply", slow_start)
    headers = session_headers(user)

    async def scenario() -> None:
        socket = await connected(headers)
        await socket.send_json_to(CHAT)
        await asyncio.sleep(0.1)  # the messages are being stored
        await socket.disconnect(timeout=2)

    run(scenario)
    message = Message.objects.get(role="assistant")
    assert (message.status, message.error_code) == ("cancelled", "disconnected")
    assert not ScriptedProvider.calls  # the provider was never called


def test_a_client_that_goes_away_while_the_start_frame_is_sent_leaves_nothing_streaming(
    user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_send = consumers.ChatConsumer.send_json_text

    async def slow_start(self: Any, data: bytes) -> None:
        if b'"type":"start"' in data:
            await asyncio.sleep(0.3)  # a slow network: the client leaves meanwhile
        await real_send(self, data)

    monkeypatch.setattr(consumers.ChatConsumer, "send_json_text", slow_start)
    headers = session_headers(user)

    async def scenario() -> None:
        socket = await connected(headers)
        await socket.send_json_to(CHAT)
        await asyncio.sleep(0.1)
        await socket.disconnect(timeout=2)

    run(scenario)
    message = Message.objects.get(role="assistant")
    assert (message.status, message.error_code) == ("cancelled", "disconnected")


def test_a_send_that_fails_as_the_client_leaves_saves_the_reply_quietly(
    user: Any, settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ScriptedProvider.enqueue([TextDelta("Partial "), Pause(5), TextDelta("never")])
    settings.STREAMING = {**settings.STREAMING, "DISCONNECT_GRACE_SECONDS": 0}
    real_send = consumers.ChatConsumer.send_json_text

    async def gone(self: Any, data: bytes) -> None:
        if b'"type":"text-delta"' in data:
            raise OSError("the client went away")  # what uvicorn raises for a closed socket
        await real_send(self, data)

    monkeypatch.setattr(consumers.ChatConsumer, "send_json_text", gone)
    headers = session_headers(user)

    async def scenario() -> None:
        socket = await connected(headers)
        await socket.send_json_to(CHAT)
        await frames_until(socket, "text-start")
        await asyncio.sleep(0.3)
        await socket.disconnect()

    run(scenario)
    message = Message.objects.get(role="assistant")
    assert (message.status, message.error_code) == ("cancelled", "disconnected")
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def closed_with(app: Any, headers: list[tuple[bytes, bytes]], scheme: str = "ws") -> dict[str, Any]:
    """What a socket opened with ``headers`` gets first: a frame, or the close of a refused socket."""

    async def scenario() -> dict[str, Any]:
        socket = WebsocketCommunicator(app, "/ws/chat/", headers=headers)
        socket.scope["scheme"] = scheme
        ok, _ = await socket.connect()
        assert ok  # accepted, so that the close code reaches the browser
        await socket.send_json_to(CHAT)
        output: dict[str, Any] = await socket.receive_output(3)
        await socket.wait()
        return output

    return run(scenario)  # type: ignore[no-any-return]


#: The demo project's routing without channels' ``AllowedHostsOriginValidator``: a project that forgot it.
def without_validator() -> Any:
    from channels.auth import AuthMiddlewareStack
    from channels.routing import URLRouter

    from streaming.routing import websocket_urlpatterns

    return AuthMiddlewareStack(URLRouter(websocket_urlpatterns))


@pytest.mark.parametrize(
    "origin",
    [b"http://testserver:9999", b"https://testserver", b"http://testserver.evil.example", b"null"],
)
def test_another_scheme_or_port_of_the_host_is_refused_with_4403(user: Any, origin: bytes) -> None:
    """channels' validator compares host names only: the consumer checks the whole origin, as Django's
    CSRF check does for the HTTP API (another port of the host may be another site)."""
    headers = [(b"origin", origin), *session_headers(user)[1:]]
    # (the demo's routing refuses the last two at the handshake already: its validator knows the host)
    apps = [application, without_validator()] if b"testserver:" in origin or b"https" in origin else []
    for app in apps or [without_validator()]:
        assert closed_with(app, headers) == {"type": "websocket.close", "code": 4403}
    assert consumers.CLOSE_FORBIDDEN_ORIGIN == 4403
    assert not Message.objects.exists()


@pytest.mark.parametrize("origin", [b"http://evil.example", None])
def test_without_channels_validator_a_cross_site_page_is_refused(user: Any, origin: bytes | None) -> None:
    headers = session_headers(user)[1:]
    if origin is not None:
        headers.insert(0, (b"origin", origin))
    assert closed_with(without_validator(), headers) == {"type": "websocket.close", "code": 4403}
    assert not Message.objects.exists()


def test_the_sites_own_origin_over_tls_and_trusted_origins_may_chat(user: Any, settings: Any) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com", "https://*.example.org"]
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "chat.example.com", ".example.org"]
    cookie = session_headers(user)[2]
    cases = [
        ([(b"origin", b"https://testserver"), HOST, cookie], "wss"),  # the page over TLS, and its socket
        ([(b"origin", b"https://chat.example.com"), HOST, cookie], "ws"),
        ([(b"origin", b"https://app.example.org"), HOST, cookie], "ws"),
    ]
    for headers, scheme in cases:
        ScriptedProvider.enqueue([TextDelta("Hi"), Finish()])
        assert closed_with(without_validator(), headers, scheme)["type"] == "websocket.send"


def test_a_second_socket_resumes_a_reply_after_the_last_chunk_it_had(user: Any) -> None:
    """``{"type": "resume", "message": id, "after": n}``: the rest of a reply, live, on another socket
    (a reload); then the same reply replayed whole once it has ended."""
    script: list[Any] = [TextDelta("One "), Pause(0.2), TextDelta("two "), Pause(0.2), TextDelta("three")]
    ScriptedProvider.enqueue([*script, Usage(3, 3), Finish()])
    headers = session_headers(user)

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        first = await connected(headers)
        await first.send_json_to(CHAT)
        seen = await frames_until(first, "text-delta")
        await first.disconnect()  # a reload: the reply goes on
        second = await connected(headers)
        message = seen[0]["messageId"]
        await second.send_json_to({"type": "resume", "message": message, "after": len(seen) - 1})
        rest = await frames_until_end(second)
        await second.send_json_to({"type": "resume", "message": message})
        replayed = await frames_until_end(second)
        await second.disconnect()
        return seen, rest, replayed

    seen, rest, replayed = run(scenario)
    text = "".join(f["delta"] for f in [*seen, *rest] if f["type"] == "text-delta")
    assert text == "One two three"
    assert rest[0]["type"] != "start"  # it goes on where the first socket left off
    assert rest[-1]["messageMetadata"]["status"] == "complete"
    assert replayed[0]["type"] == "start" and replayed[-1] == rest[-1]
    assert "".join(f["delta"] for f in replayed if f["type"] == "text-delta") == "One two three"


@pytest.mark.parametrize(
    ("frame", "code", "field"),
    [
        ({"type": "resume", "message": str(uuid.uuid4())}, "not_found", "message"),
        ({"type": "resume", "message": "nope"}, "invalid_request", "message"),
        ({"type": "resume", "message": str(uuid.uuid4()), "after": "x"}, "invalid_request", "after"),
        ({"type": "chat", "message": "a\u0000b", "model": "scripted:model-a"}, "invalid_request", "message"),
    ],
)
def test_a_bad_resume_or_a_nul_is_an_error_frame(
    user: Any, frame: dict[str, Any], code: str, field: str
) -> None:
    headers = session_headers(user)

    async def scenario() -> dict[str, Any]:
        socket = await connected(headers)
        await socket.send_json_to(frame)
        answer = await socket.receive_json_from(3)
        await socket.disconnect()
        return answer

    answer = run(scenario)
    assert (answer["type"], answer["code"], answer.get("field")) == ("error", code, field)
