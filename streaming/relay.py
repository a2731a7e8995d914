"""Relay a reply from its provider to its transcript, whoever reads it and whenever.

A producer (``streaming.producers``: a thread under WSGI, a task on the event loop under ASGI and for
WebSockets) calls the provider and hands each event to the ``Relay``, which turns it into chunks and
appends them to the reply's transcript (``streaming.replylog``), where every reader takes them.

The reply depends on no reader. The first one (the response to the request that started it) starts
the producer once it has sent the ``start`` chunk; when the last reader leaves, the reply goes on for
``DISCONNECT_GRACE_SECONDS`` waiting for another. Whatever ends it (the provider's last event, an
error, a stop from any process, a timeout, the budget, or the grace running out with nobody reading),
the upstream call is closed at once, the reply is saved (retried while the database is away), and its
closing chunks, with the stored cost, end the transcript.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from django.db import DatabaseError, InterfaceError, OperationalError

from streaming import database, presence, upkeep
from streaming.conf import ModelSpec, app_settings
from streaming.events import Event, estimate_tokens
from streaming.exceptions import BudgetExceeded, ProviderTimeout, StreamingError
from streaming.parts import Part
from streaming.providers.base import ChatRequest, ToolResult
from streaming.reply import Chunk, ReplyState
from streaming.replylog import Transcript
from streaming.saving import save_reply
from streaming.steps import ToolPlan
from streaming.stopping import watcher
from streaming.timers import timers

logger = logging.getLogger(__name__)

#: How long a save waits before it is tried again while the database is away: doubling, up to the last.
SAVE_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)


class Relay:
    """One reply on its way from the provider to its transcript. Thread-safe: the producer feeds it,
    and a stop, a timer or a reader leaving may end it from any thread."""

    def __init__(self, reply: ReplyState, transcript: Transcript) -> None:
        self.reply = reply
        self.transcript = transcript
        self.last_event = time.monotonic()
        self.ended = threading.Event()  # set when the outcome is settled: the producer stops
        self._lock = threading.Lock()
        self._started = False
        self._hangup: Callable[[], None] | None = None  # ends the provider call under way
        self._task: asyncio.Task[None] | None = None
        self._unread_since: float | None = None
        self._save_attempts = 0
        self.tools_running = False  # no timeout of the model's counts while the step's tools run

    @property
    def message_id(self) -> str:
        return self.reply.message_id

    # -- the start --------------------------------------------------------------------------------
    def begin(self) -> None:
        """Before the provider is called: the opening chunks, the stop watch, timeouts and the lease."""
        self.transcript.on_unread = self._unread
        self.transcript.append(self.reply.opening_chunks())
        upkeep.register(self)
        watcher.watch(self.message_id, self.stop)
        timers.at(self._deadline(), self._check_time)

    def start_thread(self) -> None:
        """Call the provider on a thread of its own (WSGI)."""
        from streaming.producers import produce_sync

        if self._claim_start():
            name = f"streaming-reply-{self.message_id[:8]}"
            threading.Thread(target=produce_sync, args=(self,), name=name, daemon=True).start()

    def start_task(self) -> None:
        """Call the provider in a task of the running event loop (ASGI, WebSocket)."""
        from streaming.producers import produce_async

        if self._claim_start():
            self._task = asyncio.get_running_loop().create_task(produce_async(self))

    def _claim_start(self) -> bool:
        with self._lock:
            if self._started or self.ended.is_set():
                return False
            self._started = True
            return True

    def request(self, spec: ModelSpec, *, blocking: bool) -> ChatRequest:
        """The provider request of one attempt. A ``blocking`` call (on a thread of its own) is ended
        through its hang-up, at once if the reply ended meanwhile; an async one by cancelling its task."""
        reply = self.reply
        # Decided per model: a fallback without reasoning must not be asked for it.
        request = ChatRequest(
            spec.model, reply.step_context(), reasoning=reply.reasoning_requested and spec.reasoning
        )
        if reply.tools:
            request.tools = reply.tool_specs()
            request.tool_choice = "none" if reply.last_call else None
        if blocking:
            with self._lock:
                self._hangup = request.hangup.hang_up
            if self.ended.is_set():
                request.hangup.hang_up()
        return request

    # -- events -----------------------------------------------------------------------------------
    def feed(self, event: Event) -> bool:
        """One event of the provider; False when the reply has ended (the producer stops)."""
        with self._lock:
            if self.ended.is_set():
                return False
            reply = self.reply
            waiting = reply.step.ttft_ms is None
            chunks = reply.on_event(event)
            self.last_event = time.monotonic()
            if chunks:
                self.transcript.append(chunks)
            if reply.budget is not None and reply.budget.crossed((event,), reply.answered_id):
                reply.fail(BudgetExceeded("The reply was stopped: it reached your monthly budget."))
            streaming = reply.status == "streaming"
            if not streaming:
                self.ended.set()
        if streaming:
            if waiting and reply.step.ttft_ms is not None:  # the first token: now the idle timeout counts
                timers.at(self._deadline(), self._check_time)
            return True
        self._finish()
        return False

    def parts(self) -> list[Part]:
        """The reply's parts so far (for a checkpoint, from another thread)."""
        with self._lock:
            return self.reply.parts

    # -- steps ------------------------------------------------------------------------------------
    def end_call(self) -> bool:
        """The model's stream of this step ended; False when the reply has ended."""
        with self._lock:
            if self.ended.is_set():
                return False
            self.transcript.append(self.reply.step_done())
            return True

    def plan_tools(self) -> ToolPlan | None:
        """What becomes of the step's tool calls (approval requests go out now); None once it ended."""
        with self._lock:
            if self.ended.is_set():
                return None
            plan, chunks = (
                self.reply.plan_tools() if not self.reply.resuming else (self.reply.plan_approved(), [])
            )
            self.transcript.append(chunks)
            self.tools_running = bool(plan.run)
            return plan

    def tool_results(self, results: list[ToolResult]) -> bool:
        with self._lock:
            self.tools_running = False
            if self.ended.is_set():
                return False
            self.last_event = time.monotonic()
            self.transcript.append(self.reply.tool_results(results))
            return True

    def next_step(self) -> bool:
        """The model is called again with the step's results; False when the reply has ended."""
        with self._lock:
            if self.ended.is_set():
                return False
            reply = self.reply
            reply.resuming = False
            self.transcript.append(reply.next_step())
            if reply.budget is not None:
                reply.budget.next_call(sum(estimate_tokens(m.content) for m in reply.step_context()))
            return True

    def await_approval(self) -> None:
        """The step's calls wait for the user's answer: the reply ends here, and goes on when it comes."""
        self._settle(ReplyState.await_approval)

    def complete(self) -> None:
        self._settle(ReplyState.complete)

    def fail(self, error: StreamingError) -> None:
        self._settle(lambda reply: reply.fail(error))

    def stop(self) -> None:
        """Asked to stop, from any tab or process."""
        self._settle(lambda reply: reply.cancel("stopped"))

    def interrupt(self) -> None:
        """The server is going away (its event loop cancels the producer): keep what came."""
        self._settle(ReplyState.interrupt)

    def _settle(self, outcome: Callable[[ReplyState], object]) -> bool:
        with self._lock:
            if self.ended.is_set():
                return False
            outcome(self.reply)
            self.ended.set()
        self._finish()
        return True

    # -- time and readers ---------------------------------------------------------------------------
    def _deadline(self) -> float:
        if self.tools_running:  # (a tool's own timeout applies; the model's count starts again after)
            return time.monotonic() + app_settings.idle_timeout
        step = self.reply.step
        if step.ttft_ms is None:
            return step.started + app_settings.first_token_timeout
        return self.last_event + app_settings.idle_timeout

    def _check_time(self) -> None:
        if self.ended.is_set():
            return
        if time.monotonic() < self._deadline():
            timers.at(self._deadline(), self._check_time)  # a token came since: the deadline moved
            return
        if self.reply.step.ttft_ms is None:
            message = f"The model sent nothing within {app_settings.first_token_timeout:g} seconds."
        else:
            message = f"The model stopped sending for {app_settings.idle_timeout:g} seconds."
        self.fail(ProviderTimeout(message))

    def _unread(self) -> None:
        """The last reader left: end the reply now, or when the grace period passes with no reader."""
        if self.ended.is_set():
            return
        grace = app_settings.disconnect_grace_seconds
        if not self._started or grace == 0:  # (not started: the first reader never came back)
            self._settle(lambda reply: reply.cancel("disconnected"))
        elif grace is not None:
            self._unread_since = time.monotonic()
            timers.after(grace, self._check_readers)

    def _check_readers(self) -> None:
        if self.ended.is_set() or self.transcript.readers or self._unread_since is None:
            return
        grace = app_settings.disconnect_grace_seconds or 0.0
        since = self._unread_since
        now = time.monotonic()
        if now - since < grace:  # a reader came and went meanwhile: its own grace counts
            timers.at(since + grace, self._check_readers)
            return
        if presence.read_elsewhere(self.message_id):
            self._unread_since = now  # read through another process: look again later
            timers.after(grace, self._check_readers)
            return
        self._settle(lambda reply: reply.cancel("disconnected"))

    # -- the end ------------------------------------------------------------------------------------
    def _finish(self) -> None:
        """The outcome is settled: close the provider call, stop watching, save, then the closing chunks."""
        with self._lock:
            hangup, task = self._hangup, self._task
        if hangup is not None:
            hangup()
        if task is not None:
            _cancel(task)
        watcher.forget(self.message_id)
        self._save()

    def _save(self) -> None:
        database.start(lambda: save_reply(self.reply)).add_done_callback(self._saved)

    def _saved(self, saving: Future[bool]) -> None:
        error = saving.exception()
        if error is None:
            self._close(self.reply.closing_chunks())
        elif isinstance(error, (OperationalError, InterfaceError)):
            self._retry_save(error)
        else:
            if not isinstance(error, DatabaseError):
                logger.error("streaming: could not save reply %s", self.message_id, exc_info=error)
            else:
                logger.error("streaming: the database refused reply %s", self.message_id, exc_info=error)
            self._close(self.reply.closing_chunks())

    def _retry_save(self, error: BaseException) -> None:
        delay = SAVE_RETRY_DELAYS[min(self._save_attempts, len(SAVE_RETRY_DELAYS) - 1)]
        if self._save_attempts == 0:
            logger.warning(
                "streaming: the database is unreachable; reply %s is kept until it returns: %s",
                self.message_id,
                error,
            )
            self.transcript.append([saving_notice()])
        self._save_attempts += 1
        timers.after(delay, self._save)

    def _close(self, chunks: list[Chunk]) -> None:
        self.transcript.end(chunks)
        upkeep.unregister(self)


def saving_notice() -> Chunk:
    """Told to readers while a reply waits for the database: nothing is lost, it is saved when it returns."""
    return {
        "type": "data-notice",
        "transient": True,
        "data": {
            "code": "database_unavailable",
            "message": "The database is unreachable: the reply is kept, and saved when it returns.",
        },
    }


def _cancel(task: asyncio.Task[None]) -> None:
    loop = task.get_loop()
    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    if here is loop:
        if task is not asyncio.current_task():  # (the producer ending the reply itself returns anyway)
            task.cancel()
    elif not loop.is_closed():
        loop.call_soon_threadsafe(task.cancel)
