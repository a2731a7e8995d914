"""The stream protocol (the AI SDK's UI message stream v1), exactly, on the WSGI (sync) and the ASGI
(async) path."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client

from streaming.events import Finish, ReasoningDelta, TextDelta, Usage
from streaming.exceptions import Overloaded
from streaming.models import Message
from streaming.providers.scripted import Pause, ScriptedProvider
from streaming.replylog import Transcript
from tests.sse import event_ids, parse_events, text_of, types

pytestmark = pytest.mark.django_db(transaction=True)


def post_sync(api: Client, body: dict[str, Any]) -> tuple[Any, bytes]:
    response: Any = api.post("/api/chat", body, content_type="application/json")
    return response, b"".join(response.streaming_content)


def post_async(user: Any, body: dict[str, Any]) -> tuple[Any, bytes]:
    async def run() -> tuple[Any, bytes]:
        client = AsyncClient()
        await sync_to_async(client.force_login)(user)
        response: Any = await client.post("/api/chat", body, content_type="application/json")
        data = b"".join([part async for part in response.streaming_content])
        return response, data

    return asyncio.run(run())


@pytest.fixture(params=["wsgi", "asgi"])
def post(request: pytest.FixtureRequest, api: Client, user: Any) -> Any:
    if request.param == "wsgi":
        return lambda body: post_sync(api, body)
    return lambda body: post_async(user, body)


def test_headers_and_complete_reply(post: Any) -> None:
    ScriptedProvider.enqueue(
        [
            TextDelta("Hel"),
            Pause(0.05),
            TextDelta("lo"),
            Usage(input_tokens=7, output_tokens=2),
            Finish("stop"),
        ]
    )
    response, body = post({"message": "Hi", "model": "scripted:model-a"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    assert response["X-Accel-Buffering"] == "no"
    assert response["x-vercel-ai-ui-message-stream"] == "v1"
    assert not response.has_header("Connection")
    events = parse_events(body)
    assert types(events) == [
        "start",
        "start-step",
        "text-start",
        "text-delta",
        "text-delta",
        "text-end",
        "finish-step",
        "finish",
        "[DONE]",
    ]
    assert event_ids(body) == list(range(8))  # every JSON event numbered, [DONE] is not
    message = Message.objects.get(role="assistant")
    start, finish = events[0], events[-2]
    assert start["messageId"] == str(message.id)
    assert start["messageMetadata"] == {
        "conversationId": str(message.conversation_id),
        "userMessageId": str(Message.objects.get(role="user").id),
        "model": "scripted:model-a",
    }
    assert finish["finishReason"] == "stop"
    metadata = finish["messageMetadata"]
    assert metadata["status"] == "complete"
    assert metadata["usage"] == {
        "inputTokens": 7,
        "outputTokens": 2,
        "cachedInputTokens": 0,
        "cacheWriteTokens": 0,
        "reasoningTokens": 0,
        "estimated": False,
    }
    assert metadata["currency"] == "USD"
    assert isinstance(metadata["ttftMs"], int)
    assert metadata["durationMs"] >= metadata["ttftMs"]
    assert text_of(events) == "Hello"


def test_reasoning_streams_before_text(post: Any) -> None:
    thinking: list[Any] = [ReasoningDelta("Think"), Pause(0.05), ReasoningDelta("ing")]
    ScriptedProvider.enqueue([*thinking, TextDelta("Answer"), Usage(3, 9, reasoning_tokens=4), Finish()])
    _, body = post({"message": "Why?", "model": "scripted:thinker", "reasoning": True})

    events = parse_events(body)
    assert types(events)[2:9] == [
        "reasoning-start",
        "reasoning-delta",
        "reasoning-delta",
        "reasoning-end",
        "text-start",
        "text-delta",
        "text-end",
    ]
    assert events[2]["id"] == "r1" and events[6]["id"] == "t1"
    assert ScriptedProvider.calls[0].request.reasoning is True
    message = Message.objects.get(role="assistant")
    assert (message.reasoning, message.content) == ("Thinking", "Answer")


def deltas_of(body: bytes) -> list[tuple[str, str]]:
    return [(e["type"], e["delta"]) for e in parse_events(body) if e != "[DONE]" and "delta" in e]


def test_tokens_that_arrive_together_leave_as_one_delta(user: Any) -> None:
    """A burst of tokens (a fast model, a busy server) costs one chunk per kind, not one per token.
    (On the ASGI path a burst is deterministic: the producer task does not yield between events.)"""
    burst: list[Any] = [
        ReasoningDelta("a"),
        ReasoningDelta("b"),
        TextDelta("c"),
        TextDelta("d"),
        TextDelta("e"),
    ]
    ScriptedProvider.enqueue([ReasoningDelta("r"), Pause(0.05), *burst, Usage(3, 5), Finish()])
    _, body = post_async(user, {"message": "Go", "model": "scripted:thinker", "reasoning": True})

    assert deltas_of(body) == [("reasoning-delta", "r"), ("reasoning-delta", "ab"), ("text-delta", "cde")]
    assert types(parse_events(body))[-3:] == ["finish-step", "finish", "[DONE]"]


def test_the_first_token_of_a_burst_leaves_before_the_rest(user: Any) -> None:
    """A whole reply in one network read: its first token is not held back until the rest is parsed."""
    ScriptedProvider.enqueue([TextDelta("a"), TextDelta("b"), TextDelta("c"), Usage(3, 3), Finish()])
    _, body = post_async(user, {"message": "Go", "model": "scripted:model-a"})

    assert deltas_of(body) == [("text-delta", "a"), ("text-delta", "bc")]


def test_deltas_merge_only_with_their_own_kind_and_only_until_read() -> None:
    transcript = Transcript("m")
    text = {"type": "text-delta", "id": "t1"}
    transcript.append([{**text, "delta": "a"}, {**text, "delta": "b"}])
    transcript.append([{"type": "reasoning-delta", "id": "r1", "delta": "r"}, {**text, "delta": "c"}])
    first = transcript.read(-1)
    assert first is not None
    transcript.append([{**text, "delta": "d"}])  # after a read: a delta of its own
    second = transcript.read(first.next - 1)
    assert second is not None
    deltas = [orjson.loads(c)["delta"] for found in (first, second) for c in found.json_chunks()]
    assert deltas == ["ab", "r", "c", "d"]
    assert (first.first, second.first) == (0, 3)  # ids count up, one per chunk


def test_reasoning_is_not_requested_from_a_model_without_it(post: Any) -> None:
    post({"message": "Why?", "model": "scripted:model-a", "reasoning": True})
    assert ScriptedProvider.calls[0].request.reasoning is False


def test_error_after_the_stream_started(post: Any) -> None:
    ScriptedProvider.enqueue([TextDelta("Part"), Overloaded("The provider is overloaded.")])
    _, body = post({"message": "Hi", "model": "scripted:model-a"})

    events = parse_events(body)
    assert types(events)[-4:] == ["text-end", "error", "finish", "[DONE]"]
    error, finish = events[-3], events[-2]
    assert error == {"type": "error", "errorText": "The provider is overloaded.", "code": "overloaded"}
    assert finish["finishReason"] == "error"
    assert finish["messageMetadata"]["status"] == "error"
    assert finish["messageMetadata"]["usage"]["estimated"] is True  # the provider never reported usage
    message = Message.objects.get(role="assistant")
    assert (message.status, message.content, message.error_code) == ("error", "Part", "overloaded")
    assert len(ScriptedProvider.calls) == 1  # nothing is retried after the first token


def test_heartbeats_while_the_provider_is_quiet(post: Any, settings: Any) -> None:
    settings.STREAMING = {**settings.STREAMING, "HEARTBEAT_SECONDS": 0.05}
    ScriptedProvider.enqueue([Pause(0.3), TextDelta("late"), Finish()])
    _, body = post({"message": "Hi", "model": "scripted:model-a"})

    events = parse_events(body)
    assert types(events)[:2] == ["start", "start-step"]
    assert events.count("ping") >= 3
    first_text = types(events).index("text-delta")
    assert all(e == "ping" for e in events[2 : first_text - 1])
    assert b": ping\n\n" in body


def test_first_token_timeout(post: Any, settings: Any) -> None:
    settings.STREAMING = {**settings.STREAMING, "FIRST_TOKEN_TIMEOUT": 0.2, "HEARTBEAT_SECONDS": 0.05}
    ScriptedProvider.enqueue([Pause(5), TextDelta("never")])
    _, body = post({"message": "Hi", "model": "scripted:model-a"})

    events = parse_events(body)
    error = next(e for e in events if isinstance(e, dict) and e["type"] == "error")
    assert error["code"] == "timeout"
    assert "0.2 seconds" in error["errorText"]
    assert Message.objects.get(role="assistant").status == "error"


def test_idle_timeout_keeps_the_partial_reply(post: Any, settings: Any) -> None:
    settings.STREAMING = {**settings.STREAMING, "IDLE_TIMEOUT": 0.2, "HEARTBEAT_SECONDS": 0.05}
    ScriptedProvider.enqueue([TextDelta("Half a "), Pause(5), TextDelta("reply")])
    _, body = post({"message": "Hi", "model": "scripted:model-a"})

    events = parse_events(body)
    assert [e["code"] for e in events if isinstance(e, dict) and e["type"] == "error"] == ["timeout"]
    message = Message.objects.get(role="assistant")
    assert (message.status, message.content) == ("error", "Half a ")
    assert message.usage.get().estimated is True


def test_the_response_reads_its_generator_or_what_a_middleware_made_of_it() -> None:
    """Under ASGI the response iterates its own generator directly; a middleware that replaces the
    content (GZipMiddleware does) is read instead, and the generator is closed either way."""
    from streaming.sse import EventStreamResponse

    closed: list[str] = []

    async def events() -> Any:
        try:
            for n in range(3):
                yield b"data: %d\n\n" % n
        finally:
            closed.append("closed")

    async def read(response: EventStreamResponse, limit: int = 10) -> list[bytes]:
        """As Django's ASGI handler does: ``aiter(response)``, closed when done (or gone early)."""
        parts = []
        content = aiter(response)
        async for part in content:
            parts.append(part)
            if len(parts) == limit:
                break
        await content.aclose()  # type: ignore[attr-defined]
        return parts

    plain = EventStreamResponse(events())
    assert asyncio.run(read(plain)) == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]

    wrapped = EventStreamResponse(events())
    original = wrapped.streaming_content

    async def shout() -> Any:
        async for part in original:  # type: ignore[union-attr]
            yield part.upper()

    wrapped.streaming_content = shout()
    assert asyncio.run(read(wrapped)) == [b"DATA: 0\n\n", b"DATA: 1\n\n", b"DATA: 2\n\n"]

    stopped = EventStreamResponse(events())
    assert asyncio.run(read(stopped, limit=1)) == [b"data: 0\n\n"]
    assert closed == ["closed", "closed", "closed"]
