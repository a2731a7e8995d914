"""Relay a reply from its provider to the client, under WSGI (a sync generator) or ASGI (an async one).

A producer calls the provider (a worker thread under WSGI, a task under ASGI) and puts its events
in an inbox; the response generator drains the inbox, so one network write carries every token that
arrived since the last one. While the provider is quiet, the generator sends ``: ping`` heartbeats,
enforces the first-token and idle timeouts, and renews the reply's lease. A stop request or a client
that goes away ends the provider call; the reply is saved in every case.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import queue
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from concurrent.futures import Future
from typing import Any

from streaming import database
from streaming.attempts import AttemptPlan
from streaming.budgets import BudgetGuard
from streaming.conf import ModelSpec, app_settings
from streaming.events import coalesce
from streaming.exceptions import (
    BudgetExceeded,
    ProviderError,
    ProviderTimeout,
    StreamingError,
    UpstreamError,
)
from streaming.providers import get_provider
from streaming.providers.base import ChatRequest
from streaming.providers.upstream import ON_OPEN, UpstreamAbort
from streaming.reply import Chunk, ReplyState
from streaming.services import save_reply, touch_reply
from streaming.stopping import watcher

logger = logging.getLogger(__name__)

END = "end"  # the provider finished its reply
STOP = "stop"  # somebody asked the reply to stop
HEARTBEAT: list[Chunk] = []  # yielded (by identity) when the transport should send a keep-alive
BURST = 256  # events read without a pause before the ASGI producer lets the writer run
Batch = list[Chunk]


class Driver:
    """What to send, and when, for one reply: shared by every transport."""

    def __init__(self, reply: ReplyState) -> None:
        self.reply = reply
        now = time.monotonic()
        self.last_event = self.last_write = self.last_touch = now
        self.heartbeat = app_settings.heartbeat_seconds
        self.first_token_timeout = app_settings.first_token_timeout
        self.idle_timeout = app_settings.idle_timeout
        self.lease = app_settings.stale_after_seconds / 4
        self.renewing: Future[None] | None = None  # the lease renewal being written, if any

    @property
    def finished(self) -> bool:
        return self.reply.status != "streaming"

    def opening(self) -> list[Chunk]:
        return self.reply.opening_chunks()

    def wait_time(self) -> float:
        """How long the inbox may stay quiet before a heartbeat, a timeout or a lease renewal is due."""
        due = min(self.last_write + self.heartbeat, self._deadline(), self.last_touch + self.lease)
        return max(0.0, due - time.monotonic())

    def _deadline(self) -> float:
        if self.reply.ttft_ms is None:
            return self.reply.started + self.first_token_timeout
        return self.last_event + self.idle_timeout

    def feed(self, items: list[Any]) -> list[Chunk]:
        """Turn inbox items into chunks; an END, STOP or error item settles the reply's outcome."""
        chunks: list[Chunk] = []
        reply = self.reply
        items = coalesce(items)
        for item in items:
            if item is END:  # (by identity: an event's __eq__ would cost a call per token)
                reply.complete()
            elif item is STOP:
                reply.cancel("stopped")
            elif isinstance(item, StreamingError):
                reply.fail(item)
            else:
                chunks += reply.on_event(item)
                continue
            break
        self.last_event = time.monotonic()
        if reply.budget is not None:
            self._check_budget(reply.budget, items)
        return chunks

    def _check_budget(self, guard: BudgetGuard, items: list[Any]) -> None:
        """Stop a reply whose running cost estimate passes the user's budget (in memory, no query)."""
        if self.finished:
            return
        if guard.crossed(items, (self.reply.answered_by or self.reply.spec).id):
            self.reply.fail(BudgetExceeded("The reply was stopped: it reached your monthly budget."))

    def quiet(self) -> Batch:
        """Nothing arrived: time out, or ask for a heartbeat when the connection has been silent too long."""
        now = time.monotonic()
        if now >= self._deadline():
            if self.reply.ttft_ms is None:
                message = f"The model sent nothing within {self.first_token_timeout:g} seconds."
            else:
                message = f"The model stopped sending for {self.idle_timeout:g} seconds."
            self.reply.fail(ProviderTimeout(message))
            return []
        if now - self.last_write >= self.heartbeat:
            return HEARTBEAT
        return []

    def lease_due(self) -> bool:
        now = time.monotonic()
        if now - self.last_touch < self.lease:
            return False
        self.last_touch = now
        return self.renewing is None or self.renewing.done()  # (the last one still being written: skip)

    def touch(self) -> Callable[[], None]:
        """The lease renewal, with the text so far as it is now."""
        reply = self.reply
        return functools.partial(touch_reply, reply.message_id, reply.text, reply.reasoning)

    def renew_lease(self) -> None:
        """Renew the lease on a database thread, without waiting: the stream goes on meanwhile (a
        thousand replies renewing at once queue for the database, and each would hold its stream up)."""
        self.renewing = database.start(self.touch())
        self.renewing.add_done_callback(_log_renewal_failure)

    def sent(self) -> None:
        self.last_write = time.monotonic()


def _log_renewal_failure(renewal: Future[None]) -> None:
    if not renewal.cancelled() and renewal.exception() is not None:
        logger.error("streaming: could not renew a reply's lease", exc_info=renewal.exception())


def _request(reply: ReplyState, spec: ModelSpec) -> ChatRequest:
    # Decided per model: a fallback without reasoning must not be asked for it.
    reasoning = reply.reasoning_requested and spec.reasoning
    return ChatRequest(model=spec.model, messages=reply.context, reasoning=reasoning)


def _unexpected(exc: Exception) -> UpstreamError:
    logger.exception("streaming: the provider failed unexpectedly", exc_info=exc)
    return UpstreamError("The model provider failed unexpectedly.")


# -- WSGI: a worker thread calls the provider; the request thread writes ---------------------------


class Cancellation(threading.Event):
    """Set when a reply ends early: the worker stops, and a read blocked on a quiet upstream is hung up."""

    def __init__(self) -> None:
        super().__init__()
        self.upstream = UpstreamAbort()

    def set(self) -> None:
        super().set()
        self.upstream.abort()


def _produce_sync(reply: ReplyState, inbox: queue.SimpleQueue[Any], cancelled: Cancellation) -> None:
    plan = AttemptPlan(reply.spec)
    while True:
        spec = plan.current
        started = False
        try:
            request = _request(reply, spec)
            request.extra[ON_OPEN] = cancelled.upstream.attach
            stream = get_provider(spec.provider).stream(request)
            try:
                for event in stream:
                    if cancelled.is_set():
                        return
                    if started:
                        inbox.put(event)
                        continue
                    started = True
                    reply.answered_by = spec
                    inbox.put(event)
                    time.sleep(0)  # (a GIL switch) the request thread sends the first token before the rest
            finally:
                stream.close()  # type: ignore[attr-defined]
            inbox.put(END)
            return
        except ProviderError as error:
            delay = None if started or cancelled.is_set() else plan.next_delay(error)
            if delay is None:
                inbox.put(error)
                return
            logger.info("streaming: %s failed (%s); next attempt in %.2fs", spec.id, error.code, delay)
            if cancelled.wait(delay):
                return
        except Exception as exc:
            inbox.put(_unexpected(exc))
            return


def run_sync(reply: ReplyState) -> Generator[Batch, None, None]:
    """Batches of chunks for a reply, on the calling thread; ``HEARTBEAT`` when a keep-alive is due.

    The first batch (``start``) is yielded before the provider is called; the reply is saved after its
    last tokens are yielded and before the closing chunks (``finish`` carries the stored cost), and in
    ``finally`` when the consumer goes away first.
    """
    driver = Driver(reply)
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    cancelled = Cancellation()
    saved = False
    try:  # from the first yield: a client gone at the first write must leave a cancelled reply
        yield driver.opening()
        watcher.watch(reply.message_id, lambda: inbox.put(STOP))
        threading.Thread(target=_produce_sync, args=(reply, inbox, cancelled), daemon=True).start()
        while True:
            items = _drain(inbox, driver.wait_time())
            batch = driver.feed(items) if items else driver.quiet()
            if driver.finished:
                cancelled.set()
                if batch:  # the last tokens go out now; the save comes before the closing chunks only
                    yield batch
                database.run(lambda: save_reply(reply))
                saved = True
                yield reply.closing_chunks()
                return
            if driver.lease_due():
                driver.renew_lease()
            if batch or batch is HEARTBEAT:
                driver.sent()
                yield batch
    finally:
        cancelled.set()
        watcher.forget(reply.message_id)
        if not saved:
            database.run(lambda: _save_abandoned(reply))


def _drain(inbox: queue.SimpleQueue[Any], timeout: float) -> list[Any]:
    try:
        items = [inbox.get(timeout=timeout)]
    except queue.Empty:
        return []
    while True:
        try:
            items.append(inbox.get_nowait())
        except queue.Empty:
            return items


def _save_abandoned(reply: ReplyState) -> None:
    """The client went away (or the server is shutting down): keep the partial reply as cancelled."""
    if reply.status == "streaming":
        reply.cancel("disconnected")
    try:
        save_reply(reply)
    except Exception:
        logger.exception("streaming: could not save reply %s; it will show as interrupted", reply.message_id)


# -- ASGI: a task calls the provider; the response generator writes -------------------------------


class AsyncInbox:
    """A queue that hands over everything that arrived since the last take, with one wake-up.

    A take waits until its deadline at the latest (a heartbeat, a timeout, a lease renewal). One timer
    keeps the deadlines: it moves only when it rings or when a deadline comes sooner, instead of being
    set and cancelled for every token (each token pushes the deadline later).
    """

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def put(self, item: Any) -> None:
        self.items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def take(self, timeout: float) -> list[Any]:
        """What arrived since the last take; empty when ``timeout`` seconds passed without anything."""
        if not self.items:
            loop = asyncio.get_running_loop()
            self._deadline = loop.time() + timeout
            if self._deadline < self._timer_at:
                self._set_timer(loop, self._deadline)
            waiter = self._waiter = loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        items, self.items = self.items, []
        return items

    def _set_timer(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(when, self._ring, loop), when

    def _ring(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer, self._timer_at = None, math.inf
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # nobody waits: the next take sets the timer again
        if loop.time() < self._deadline:
            self._set_timer(loop, self._deadline)  # the deadline moved on since the timer was set
        else:
            waiter.set_result(None)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def _produce_async(reply: ReplyState, inbox: AsyncInbox) -> None:
    plan = AttemptPlan(reply.spec)
    while True:
        spec = plan.current
        started = False
        count = 0
        try:
            stream = get_provider(spec.provider).astream(_request(reply, spec))
            try:
                async for event in stream:
                    if not started:
                        started = True
                        reply.answered_by = spec
                    inbox.put(event)
                    count += 1
                    if count == 1 or not count % BURST:
                        # A burst (a whole reply in one network read) is parsed without a pause: let
                        # the writer send the first token, and then some, before the rest.
                        await asyncio.sleep(0)
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
            inbox.put(END)
            return
        except ProviderError as error:
            delay = None if started else plan.next_delay(error)
            if delay is None:
                inbox.put(error)
                return
            logger.info("streaming: %s failed (%s); next attempt in %.2fs", spec.id, error.code, delay)
            await asyncio.sleep(delay)
        except Exception as exc:
            inbox.put(_unexpected(exc))
            return


async def run_async(reply: ReplyState, *, database_here: bool = False) -> AsyncGenerator[Batch, None]:
    """The async twin of ``run_sync``, for ASGI requests and WebSocket consumers.

    Its database work runs on ``streaming.database``'s threads; with ``database_here``, where Django
    would run it (the reply started inside a transaction: a ``TestCase``).
    """
    driver = Driver(reply)
    inbox = AsyncInbox()
    saved = False
    producer: asyncio.Task[None] | None = None
    try:  # from the first yield: a client gone at the first write must leave a cancelled reply
        yield driver.opening()
        loop = asyncio.get_running_loop()
        watcher.watch(reply.message_id, lambda: loop.call_soon_threadsafe(inbox.put, STOP))
        producer = asyncio.create_task(_produce_async(reply, inbox))
        while True:
            items = await inbox.take(driver.wait_time())
            batch = driver.feed(items) if items else driver.quiet()
            if driver.finished:
                producer.cancel()
                if batch:  # the last tokens go out now; the save comes before the closing chunks only
                    yield batch
                await database.arun(lambda: save_reply(reply), here=database_here)
                saved = True
                yield reply.closing_chunks()
                return
            if driver.lease_due():
                if database_here:  # (inside a test's transaction: in its thread, waited for)
                    await database.arun(driver.touch(), here=True)
                else:
                    driver.renew_lease()
            if batch or batch is HEARTBEAT:
                driver.sent()
                yield batch
    finally:
        inbox.close()
        if producer is not None:
            producer.cancel()
        watcher.forget(reply.message_id)
        if not saved:
            await database.arun(lambda: _save_abandoned(reply), here=database_here)
