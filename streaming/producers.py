"""Call the provider for a reply and hand its events to the relay, step after step: retries and fallbacks
before a model call's first event, nothing retried after it; between calls, the tools the model called.

``produce_sync`` runs on a thread of its own (WSGI): its read of a quiet upstream blocks, and the relay
ends it from another thread through the request's ``Hangup``; its tool calls run on the tools' own
threads and loop, and are given up when the reply ends. ``produce_async`` is a task on the event loop
(ASGI, WebSocket), which the relay cancels, tool calls and all.

Each step: call the model (``_call_sync``/``_call_async``); with no tool calls, the reply is complete.
Otherwise the calls run at once (``streaming.tools.running``), their results go out, and the model is
called again with them, at most ``MAX_STEPS`` calls in all; calls that need approval end the reply
until the user answers (``services.answer_approvals`` starts the one that goes on).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from streaming.attempts import AttemptPlan
from streaming.exceptions import ProviderError, UpstreamError
from streaming.providers import get_provider
from streaming.relay import Relay
from streaming.tools.running import run_calls, run_calls_blocking

if TYPE_CHECKING:
    from streaming.providers.base import ToolResult
    from streaming.steps import ToolPlan

logger = logging.getLogger(__name__)

#: Events read without a pause before the async producer lets the readers run.
BURST = 256


def produce_sync(relay: Relay) -> None:
    reply = relay.reply
    while True:
        if not reply.resuming and not _call_sync(relay):
            return
        plan = _plan(relay)
        if plan is None:
            return
        results = plan.results
        if plan.run:
            ran = run_calls_blocking(plan.run, reply.tools, reply.user, relay.ended)
            if ran is None:  # the reply ended (a stop) while they ran
                return
            results = results + ran
        if not _after_tools(relay, plan, results):
            return


async def produce_async(relay: Relay) -> None:
    try:
        await _produce_async(relay)
    except asyncio.CancelledError:
        # Cancelled by the relay when the reply ended, or by the server's event loop as it shuts down.
        relay.interrupt()
        raise


async def _produce_async(relay: Relay) -> None:
    reply = relay.reply
    while True:
        if not reply.resuming and not await _call_async(relay):
            return
        plan = _plan(relay)
        if plan is None:
            return
        results = plan.results
        if plan.run:
            results = results + await run_calls(plan.run, reply.tools, reply.user)
        if not _after_tools(relay, plan, results):
            return


def _plan(relay: Relay) -> ToolPlan | None:
    """After a model call: None when the reply is over (complete: no tool calls), else the tools' plan."""
    reply = relay.reply
    if not reply.resuming:
        if not relay.end_call():
            return None
        if not reply.step.calls:
            relay.complete()
            return None
    return relay.plan_tools()


def _after_tools(relay: Relay, plan: ToolPlan, results: list[ToolResult]) -> bool:
    """The calls' results go out; True when the model is to be called again."""
    if not relay.tool_results(results):
        return False
    if plan.pending:
        relay.await_approval()
        return False
    if plan.last:
        relay.complete()
        return False
    return relay.next_step()


def _call_sync(relay: Relay) -> bool:
    """One model call, with retries and fallbacks before its first event; True when its stream ended
    (the reply goes on), False when the reply has ended."""
    plan = AttemptPlan(relay.reply.answered_by or relay.reply.spec)
    while True:
        spec = plan.current
        started = False
        try:
            stream = get_provider(spec.provider).stream(relay.request(spec, blocking=True))
            try:
                for event in stream:
                    if not started:
                        started = True
                        relay.reply.answered_by = spec
                        if not relay.feed(event):
                            return False
                        time.sleep(0)  # (a GIL switch) a reader sends the first token before the rest
                    elif not relay.feed(event):
                        return False
            finally:
                stream.close()
            return True
        except ProviderError as error:
            delay = None if started or relay.ended.is_set() else plan.next_delay(error)
            if delay is None:
                relay.fail(error)
                return False
            logger.info("streaming: %s failed (%s); next attempt in %.2fs", spec.id, error.code, delay)
            if relay.ended.wait(delay):
                return False
        except Exception as exc:
            relay.fail(unexpected(exc))
            return False


async def _call_async(relay: Relay) -> bool:
    plan = AttemptPlan(relay.reply.answered_by or relay.reply.spec)
    while True:
        spec = plan.current
        count = 0
        try:
            stream = get_provider(spec.provider).astream(relay.request(spec, blocking=False))
            try:
                async for event in stream:
                    if not count:
                        relay.reply.answered_by = spec
                    if not relay.feed(event):
                        return False
                    count += 1
                    if count == 1 or not count % BURST:
                        # A burst (a whole reply in one network read) is parsed without a pause: let
                        # the readers send the first token, and then some, before the rest.
                        await asyncio.sleep(0)
            finally:
                await stream.aclose()
            return True
        except ProviderError as error:
            delay = None if count or relay.ended.is_set() else plan.next_delay(error)
            if delay is None:
                relay.fail(error)
                return False
            logger.info("streaming: %s failed (%s); next attempt in %.2fs", spec.id, error.code, delay)
            await asyncio.sleep(delay)
        except Exception as exc:
            relay.fail(unexpected(exc))
            return False


def unexpected(exc: Exception) -> UpstreamError:
    logger.exception("streaming: the provider failed unexpectedly", exc_info=exc)
    return UpstreamError("The model provider failed unexpectedly.")
