"""Call the provider for a reply and hand its events to the relay: retries and fallbacks before the
first token, nothing retried after it.

``produce_sync`` runs on a thread of its own (WSGI): its read of a quiet upstream blocks, and the relay
ends it from another thread through the request's ``Hangup``. ``produce_async`` is a task on the event
loop (ASGI, WebSocket), which the relay cancels.
"""

from __future__ import annotations

import asyncio
import logging
import time

from streaming.attempts import AttemptPlan
from streaming.exceptions import ProviderError, UpstreamError
from streaming.providers import get_provider
from streaming.relay import Relay

logger = logging.getLogger(__name__)

#: Events read without a pause before the async producer lets the readers run.
BURST = 256


def produce_sync(relay: Relay) -> None:
    plan = AttemptPlan(relay.reply.spec)
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
                            return
                        time.sleep(0)  # (a GIL switch) a reader sends the first token before the rest
                    elif not relay.feed(event):
                        return
            finally:
                stream.close()
            relay.complete()
            return
        except ProviderError as error:
            delay = None if started or relay.ended.is_set() else plan.next_delay(error)
            if delay is None:
                relay.fail(error)
                return
            logger.info("streaming: %s failed (%s); next attempt in %.2fs", spec.id, error.code, delay)
            if relay.ended.wait(delay):
                return
        except Exception as exc:
            relay.fail(unexpected(exc))
            return


async def produce_async(relay: Relay) -> None:
    try:
        await _produce_async(relay)
    except asyncio.CancelledError:
        # Cancelled by the relay when the reply ended, or by the server's event loop as it shuts down.
        relay.interrupt()
        raise


async def _produce_async(relay: Relay) -> None:
    plan = AttemptPlan(relay.reply.spec)
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
                        return
                    count += 1
                    if count == 1 or not count % BURST:
                        # A burst (a whole reply in one network read) is parsed without a pause: let
                        # the readers send the first token, and then some, before the rest.
                        await asyncio.sleep(0)
            finally:
                await stream.aclose()
            relay.complete()
            return
        except ProviderError as error:
            delay = None if count or relay.ended.is_set() else plan.next_delay(error)
            if delay is None:
                relay.fail(error)
                return
            logger.info("streaming: %s failed (%s); next attempt in %.2fs", spec.id, error.code, delay)
            await asyncio.sleep(delay)
        except Exception as exc:
            relay.fail(unexpected(exc))
            return


def unexpected(exc: Exception) -> UpstreamError:
    logger.exception("streaming: the provider failed unexpectedly", exc_info=exc)
    return UpstreamError("The model provider failed unexpectedly.")
