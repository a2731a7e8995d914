"""A stored reply as a stream: what a reader gets once the reply has ended and its log is gone.

The chunks are those the live stream had, with its text and reasoning whole: ``start``, the parts,
and the ending of its outcome (``finish`` with the stored usage and cost, an ``error``, or
``message-metadata`` + ``abort`` for a stop). Their ids count from 0 again: a client that resumed
after an id replaces what it had when a stream starts with ``start``.
"""

from __future__ import annotations

from decimal import Decimal

from streaming.conf import model_spec
from streaming.events import ReasoningDelta, TextDelta, Usage
from streaming.exceptions import NotFound, StreamingError
from streaming.models import Message
from streaming.models import Usage as UsageRow
from streaming.pricing import cost_string
from streaming.reply import Chunk, ReplyState


def stored_chunks(message_id: str) -> list[Chunk]:
    """The chunks of a stored assistant message (three queries: it, its question, its usage)."""
    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if message is None:
        raise NotFound("No such message.")
    question = (
        Message.objects.filter(
            conversation_id=message.conversation_id, role=Message.Role.USER, created_at__lt=message.created_at
        )
        .order_by("-created_at")
        .values_list("pk", flat=True)
        .first()
    )
    reply = ReplyState(
        message_id=str(message.pk),
        conversation_id=str(message.conversation_id),
        user_message_id=str(question or ""),
        user_id=message.conversation.owner_id,
        spec=model_spec(message.model),
        context=[],
    )
    chunks = reply.opening_chunks()
    if message.status == Message.Status.STREAMING:
        return chunks  # (not ended: nothing more to say yet)
    chunks += reply.on_event(ReasoningDelta(message.reasoning))
    chunks += reply.on_event(TextDelta(message.content))
    _settle(reply, message)
    reply.ttft_ms, reply.duration_ms = message.ttft_ms, message.duration_ms
    rows = list(message.usage.all())
    if rows:
        reply.usage = _total(rows)
        costs = [row.total_cost for row in rows if row.total_cost is not None]
        reply.cost = None if len(costs) < len(rows) else cost_string(sum(costs, Decimal(0)))
    else:
        reply.usage = None
    return chunks + reply.closing_chunks()


def _settle(reply: ReplyState, message: Message) -> None:
    status = message.status
    if status == Message.Status.COMPLETE:
        reply.complete()
        reply.finish_reason = message.finish_reason or "stop"
    elif status == Message.Status.CANCELLED:
        reply.cancel(message.error_code)
    elif status == Message.Status.INTERRUPTED:
        reply.interrupt()
    else:
        error = StreamingError(message.error_text or None)
        error.code = message.error_code or "error"
        reply.fail(error)


def _total(rows: list[UsageRow]) -> Usage:
    """The usage of a reply: the sum of its rows (a continued reply has one per provider call)."""
    total = Usage()
    for row in rows:
        total.input_tokens += row.input_tokens
        total.output_tokens += row.output_tokens
        total.cached_input_tokens += row.cached_input_tokens
        total.cache_write_tokens += row.cache_write_tokens
        total.reasoning_tokens += row.reasoning_tokens
        total.estimated = total.estimated or row.estimated
    return total
