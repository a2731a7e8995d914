"""Fair use per user: ``MAX_CONCURRENT_REPLIES`` streaming at once and ``REPLIES_PER_MINUTE`` started,
past which a request gets a JSON 429 ``rate_limited`` with Retry-After (an error frame over WebSocket).
Counted in the cache (local memory, files, and a Redis of the test's own), released however a
reply ends (a takeover included), recounted from the database when the cache lost the count, and
never in the way when the cache is unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.utils import timezone

from streaming import limits
from streaming.events import Finish, TextDelta
from streaming.exceptions import BudgetExceeded, TooManyReplies
from streaming.models import Message
from streaming.providers.scripted import Pause, ScriptedProvider, ScriptItem
from streaming.services import ChatInput, start_reply
from streaming.upkeep import take_over_stale
from tests import replies
from tests.concurrency import at_once
from tests.private_services import private_redis
from tests.test_websocket import connected, frames_until_end, session_headers

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"message": "Hi", "model": "scripted:model-a"}
SLOW: list[ScriptItem] = [TextDelta("Slow "), Pause(0.6), TextDelta("reply"), Finish()]


@pytest.fixture
def counters(settings: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The limits count in a cache of their own (``CACHE_ALIAS``), empty at the start: local memory,
    unless the test is parametrized with another kind."""
    kind = getattr(request, "param", "locmem")
    stack = contextlib.ExitStack()
    if kind == "redis":
        (tmp_path / "redis").mkdir()
        redis = stack.enter_context(private_redis(tmp_path / "redis"))
        cache = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis.url}
    elif kind == "files":
        cache = {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}
    else:
        cache = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "limits"}
    settings.CACHES = {**settings.CACHES, "limits": {**cache, "KEY_PREFIX": f"limits-{time.monotonic_ns()}"}}
    limits._warned_at = None
    with stack:
        yield kind
        caches["limits"].close()


def limited(settings: Any, concurrent: int | None = None, per_minute: int | None = None) -> None:
    settings.STREAMING = {
        **settings.STREAMING,
        "CACHE_ALIAS": "limits",
        "MAX_CONCURRENT_REPLIES": concurrent,
        "REPLIES_PER_MINUTE": per_minute,
    }


def ask(user: Any) -> Any:
    return start_reply(user, ChatInput(None, "Hi", "scripted:model-a"))


def post(api: Any) -> Any:
    return api.post("/api/chat", CHAT, content_type="application/json")


def assert_rate_limited(response: Any, most: int) -> None:
    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert str(most) in error["message"]
    assert 1 <= int(response["Retry-After"]) <= 60


def test_past_the_concurrent_replies_a_429_until_one_ends(
    user: Any, api: Any, settings: Any, counters: str
) -> None:
    limited(settings, concurrent=2)
    first, second = post(api), post(api)  # streaming: their readers are open, nobody reads yet
    assert (first.status_code, second.status_code) == (200, 200)
    refused = post(api)
    assert_rate_limited(refused, 2)
    assert refused["Retry-After"] == str(limits.BUSY_RETRY_AFTER)
    assert Message.objects.filter(status=Message.Status.STREAMING).count() == 2
    b"".join(first.streaming_content)  # the first reply streams to its end and is saved
    third = post(api)
    assert third.status_code == 200
    for response in (second, third):
        b"".join(response.streaming_content)
    replies.settle()
    assert caches["limits"].get(limits.streaming_key(user.pk)) == 0


@pytest.mark.parametrize("counters", ["locmem", "files", "redis"], indirect=True)
def test_replies_starting_at_once_past_the_limit_are_refused(user: Any, settings: Any, counters: str) -> None:
    """Twenty requests at the same moment, each on a thread and database connection of its own."""
    limited(settings, concurrent=4)
    started, refused = at_once(20, lambda: ask(user))
    assert len(started) == 4, refused
    assert len(refused) == 16 and all(isinstance(exc, TooManyReplies) for exc in refused), refused
    assert Message.objects.filter(status=Message.Status.STREAMING).count() == 4
    for reply in started:
        replies.chunks(reply)
    assert caches["limits"].get(limits.streaming_key(user.pk)) == 0
    replies.chunks(ask(user))


def wait_for_a_fresh_minute(margin: float = 5.0) -> None:
    """So that a test's requests fall in one clock minute (the window)."""
    into = time.time() % limits.WINDOW_SECONDS
    if into > limits.WINDOW_SECONDS - margin:
        time.sleep(limits.WINDOW_SECONDS - into + 0.1)


def test_past_the_replies_per_minute_a_429_until_the_minute_ends(
    user: Any, api: Any, settings: Any, counters: str
) -> None:
    limited(settings, per_minute=3)
    wait_for_a_fresh_minute()
    bad = api.post("/api/chat", {**CHAT, "model": "openai:gpt-9"}, content_type="application/json")
    assert bad.status_code == 400  # refused for another reason: it does not count
    for _ in range(3):
        response = post(api)
        assert response.status_code == 200
        b"".join(response.streaming_content)
    refused = post(api)
    assert_rate_limited(refused, 3)
    assert int(refused["Retry-After"]) <= limits.WINDOW_SECONDS - time.time() % limits.WINDOW_SECONDS + 1
    assert Message.objects.filter(role="assistant").count() == 3


def test_a_reply_taken_over_from_a_dead_process_frees_its_place(
    user: Any, settings: Any, counters: str
) -> None:
    limited(settings, concurrent=1)
    reply = ask(user)  # never streamed: as if its process died
    with pytest.raises(TooManyReplies):
        ask(user)
    Message.objects.filter(pk=reply.message_id).update(updated_at=timezone.now() - timedelta(minutes=10))
    call_command("mark_interrupted")
    assert Message.objects.get(pk=reply.message_id).status == Message.Status.INTERRUPTED
    replies.chunks(ask(user))


def test_a_count_the_cache_lost_is_made_again_from_the_database(
    user: Any, settings: Any, counters: str
) -> None:
    limited(settings, concurrent=2)
    first, second = ask(user), ask(user)
    caches["limits"].delete(limits.streaming_key(user.pk))  # a restarted cache, or an evicted key
    with pytest.raises(TooManyReplies):
        ask(user)
    assert caches["limits"].get(limits.streaming_key(user.pk)) == 2
    replies.chunks(first)
    replies.chunks(ask(user))
    replies.chunks(second)


def test_a_takeover_in_a_starting_reply_that_is_refused_releases_nothing(
    user: Any, settings: Any, counters: str
) -> None:
    """A stale reply taken over inside a start that then fails is rolled back with it: it still streams."""
    limited(settings, concurrent=3)
    stale = ask(user)
    Message.objects.filter(pk=stale.message_id).update(updated_at=timezone.now() - timedelta(minutes=10))
    settings.STREAMING = {**settings.STREAMING, "MONTHLY_BUDGET_USD": 0}
    with pytest.raises(BudgetExceeded):  # (the budget is read after the stale reply was taken over)
        start_reply(user, ChatInput(uuid.UUID(stale.conversation_id), "Again", "scripted:model-a"))
    assert Message.objects.get(pk=stale.message_id).status == Message.Status.STREAMING
    assert caches["limits"].get(limits.streaming_key(user.pk)) == 1
    assert take_over_stale(Message.objects.all()) == 1
    assert caches["limits"].get(limits.streaming_key(user.pk)) == 0


def test_an_unreachable_cache_limits_nothing_and_says_so(
    user: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "limits": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        },
    }
    limited(settings, concurrent=1, per_minute=1)
    limits._warned_at = None
    with caplog.at_level(logging.WARNING, logger="streaming.limits"):
        for _ in range(3):
            assert replies.chunks(ask(user))[-1]["finishReason"] == "stop"
    warnings = [r for r in caplog.records if r.name == "streaming.limits"]
    assert len(warnings) == 1  # (once a minute, not once a request)
    assert "limits are not enforced" in warnings[0].getMessage()


def test_over_websocket_an_error_frame_with_retry_after(user: Any, settings: Any, counters: str) -> None:
    limited(settings, concurrent=1)
    ScriptedProvider.enqueue(SLOW)
    headers = session_headers(user)

    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        first, second = await connected(headers), await connected(headers)
        await first.send_json_to({"type": "chat", **CHAT})
        assert (await first.receive_json_from(3))["type"] == "start"
        await second.send_json_to({"type": "chat", **CHAT})
        refused = await second.receive_json_from(3)
        await frames_until_end(first)
        await second.send_json_to({"type": "chat", **CHAT})
        later = await frames_until_end(second)
        await first.disconnect()
        await second.disconnect()
        return refused, later

    refused, later = asyncio.run(scenario())
    replies.settle()
    assert refused == {
        "type": "error",
        "errorText": refused["errorText"],
        "code": "rate_limited",
        "retryAfter": limits.BUSY_RETRY_AFTER,
    }
    assert later[-1]["messageMetadata"]["status"] == "complete"


@pytest.mark.parametrize("value", [0, -1, 2.5, "4", True])
def test_a_limit_that_is_not_a_whole_number_is_a_configuration_error(settings: Any, value: Any) -> None:
    from streaming.checks import check_streaming_settings

    base = settings.STREAMING
    for key in ("MAX_CONCURRENT_REPLIES", "REPLIES_PER_MINUTE"):
        settings.STREAMING = {**base, key: value}
        assert [m.id for m in check_streaming_settings()] == ["streaming.E007"]
    settings.STREAMING = {**base, "MAX_CONCURRENT_REPLIES": None, "REPLIES_PER_MINUTE": 1}
    assert check_streaming_settings() == []
