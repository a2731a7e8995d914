"""A stopped reply stops paying: closing a provider's stream early (``close()``, ``aclose()``, cancelling
the task that iterates it) or aborting it from another thread hangs up the upstream connection, and the
fake upstream sees the hang-up within a second, for every provider."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils.module_loading import import_string

from streaming.events import TextDelta
from streaming.exceptions import ProviderConnectionError, ProviderError
from streaming.providers.base import ChatMessage, ChatRequest, Hangup, Provider
from tests.fake_upstream import VENDORS, FakeUpstream, Hold, Recorded, Reply, Vendor

KEY = "sk-test-SECRET-1234567890"
PROMPT = 1.0  # how soon the upstream must see the hang-up, in seconds


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    for name in (
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "GOOGLE_GEMINI_BASE_URL",
        "GOOGLE_GENAI_USE_VERTEXAI",
    ):
        monkeypatch.delenv(name, raising=False)
    for vendor in VENDORS:
        monkeypatch.setenv(vendor.key_env, KEY)
    with FakeUpstream() as server:
        yield server


@pytest.fixture(params=VENDORS, ids=lambda vendor: vendor.name)
def vendor(request: pytest.FixtureRequest) -> Vendor:
    return request.param  # type: ignore[no-any-return]


def start(upstream: FakeUpstream, vendor: Vendor, **reply: Any) -> Provider:
    """A provider whose upstream sends "Hel", then nothing for a long time."""
    upstream.enqueue(Reply(body=[*vendor.partial("Hel"), Hold(20.0)], **reply))
    provider: Provider = import_string(vendor.backend)(
        vendor.name, {"base_url": upstream.url + vendor.url_suffix}
    )
    return provider


def chat(hangup: Hangup | None = None) -> ChatRequest:
    return ChatRequest("model-test", [ChatMessage("user", "Hi")], hangup=hangup or Hangup())


def assert_hung_up_promptly(record: Recorded, since: float) -> None:
    assert record.hung_up.wait(5.0), "the upstream never saw the client hang up"
    assert record.hung_up_at is not None
    assert record.hung_up_at - since < PROMPT
    assert not record.finished


async def wait_for_hang_up(record: Recorded) -> None:
    # Inside the event loop: a hang-up caused by the loop shutting down would not count.
    deadline = time.monotonic() + 5.0
    while not record.hung_up.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def test_sync_close(upstream: FakeUpstream, vendor: Vendor) -> None:
    stream = start(upstream, vendor).stream(chat())
    assert [next(stream) for _ in vendor.partial_events("Hel")] == vendor.partial_events("Hel")
    since = time.monotonic()
    stream.close()
    assert_hung_up_promptly(upstream.last, since)


def test_async_aclose(upstream: FakeUpstream, vendor: Vendor) -> None:
    provider = start(upstream, vendor)

    async def main() -> float:
        stream = provider.astream(chat())
        expected = vendor.partial_events("Hel")
        assert [await anext(stream) for _ in expected] == expected
        since = time.monotonic()
        await stream.aclose()
        await wait_for_hang_up(upstream.last)
        return since

    since = asyncio.run(main())
    assert_hung_up_promptly(upstream.last, since)


def test_async_task_cancelled(upstream: FakeUpstream, vendor: Vendor) -> None:
    provider = start(upstream, vendor)

    async def main() -> float:
        first = asyncio.Event()

        async def consume() -> None:
            async for _event in provider.astream(chat()):
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 5.0)
        await asyncio.sleep(0.05)  # the task is now blocked reading the silent upstream
        since = time.monotonic()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await wait_for_hang_up(upstream.last)
        return since

    since = asyncio.run(main())
    assert_hung_up_promptly(upstream.last, since)


def read_in_thread(stream: Iterator[Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Pull the next event on a worker thread, as the WSGI relay does; the outcome lands in the dict."""
    outcome: dict[str, Any] = {}

    def pull() -> None:
        try:
            outcome["event"] = next(stream)
        except ProviderError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=pull, daemon=True)
    thread.start()
    return thread, outcome


def test_a_hang_up_from_another_thread_unblocks_the_read(upstream: FakeUpstream, vendor: Vendor) -> None:
    hangup = Hangup()
    stream = start(upstream, vendor).stream(chat(hangup))
    assert [next(stream) for _ in vendor.partial_events("Hel")] == vendor.partial_events("Hel")
    worker, outcome = read_in_thread(stream)
    time.sleep(0.2)
    assert worker.is_alive()  # blocked on the silent upstream
    since = time.monotonic()
    hangup.hang_up()
    worker.join(PROMPT)
    assert not worker.is_alive()
    assert outcome["error"].code == "connection"
    assert_hung_up_promptly(upstream.last, since)
    stream.close()


@pytest.mark.parametrize("kept", [False, True], ids=["new connection", "kept connection"])
def test_a_hang_up_before_the_response_opens(upstream: FakeUpstream, vendor: Vendor, kept: bool) -> None:
    """A stop or a timeout while the model has not answered yet (thinking, or queued; up to the SDK's
    600 s) ends the call at once under WSGI too, on a new connection as on one kept from a call before."""
    provider = start(upstream, vendor)
    if kept:
        upstream.replies.clear()
        upstream.enqueue(Reply.stream(vendor.complete("Done")))
        assert TextDelta("Done") in list(provider.stream(chat()))
    upstream.replies.clear()
    upstream.enqueue(Reply(body=[*vendor.partial("Hel"), Hold(20.0)], delay=20.0))
    hangup = Hangup()
    stream = provider.stream(chat(hangup))
    events: list[Any] = []
    worker = threading.Thread(target=lambda: events.extend(collect_all(stream)), daemon=True)
    worker.start()
    while len(upstream.requests) < 1 + kept:
        time.sleep(0.01)  # the request went out, and the model keeps silent
    since = time.monotonic()
    hangup.hang_up()
    worker.join(PROMPT)
    assert not worker.is_alive()
    assert [type(event) for event in events] == [ProviderConnectionError]
    assert_hung_up_promptly(upstream.last, since)
    if kept:
        assert upstream.requests[1].peer == upstream.requests[0].peer


def collect_all(stream: Iterator[Any]) -> list[Any]:
    events: list[Any] = []
    try:
        events.extend(stream)
    except ProviderError as exc:
        events.append(exc)
    return events


def test_a_hang_up_on_the_async_path(upstream: FakeUpstream, vendor: Vendor) -> None:
    hangup = Hangup()
    provider = start(upstream, vendor)

    async def main() -> tuple[float, Any]:
        stream = provider.astream(chat(hangup))
        expected = vendor.partial_events("Hel")
        assert [await anext(stream) for _ in expected] == expected
        asyncio.get_running_loop().call_later(0.1, hangup.hang_up)
        since = time.monotonic() + 0.1
        with pytest.raises(ProviderError) as raised:
            await anext(stream)
        await wait_for_hang_up(upstream.last)
        return since, raised.value

    since, error = asyncio.run(main())
    assert error.code == "connection"
    assert_hung_up_promptly(upstream.last, since)


def test_a_late_hang_up_leaves_a_reused_connection_alone(upstream: FakeUpstream, vendor: Vendor) -> None:
    provider = start(upstream, vendor)
    upstream.replies.clear()
    upstream.enqueue(Reply.stream(vendor.complete("Done")))
    hangup = Hangup()
    assert TextDelta("Done") in list(provider.stream(chat(hangup)))
    upstream.enqueue(Reply.stream([*vendor.partial("Hel"), 0.3, *vendor.rest("lo")]))
    stream = provider.stream(chat())
    assert [next(stream) for _ in vendor.partial_events("Hel")] == vendor.partial_events("Hel")
    assert upstream.requests[1].peer == upstream.requests[0].peer  # the pooled connection, reused
    hangup.hang_up()  # too late for the first call: it must not hang up the second
    assert TextDelta("lo") in list(stream)
    # (the client may read the body's end before the fake's thread has recorded it)
    assert upstream.last.ended.wait(5.0)
    assert upstream.last.finished
