"""A stored reply as a stream: what a reader gets once the reply has ended and its log is gone.

The chunks are those the live stream had, with each text and reasoning part whole: ``start``, the
steps with their parts (text, reasoning, tool calls with their input and output), and the ending of
its outcome (``finish`` with the stored usage and cost, an ``error``, or
``message-metadata`` + ``abort`` for a stop). Their ids count from 0 again: a client that resumed
after an id replaces what it had when a stream starts with ``start``.
"""

from __future__ import annotations

from streaming.conf import model_spec
from streaming.exceptions import NotFound, StreamingError
from streaming.models import Message
from streaming.parts import from_text, replay_chunks
from streaming.pricing import cost_string
from streaming.reply import Chunk, ModelCall, ReplyState
from streaming.serializers import total_cost, total_usage


def stored_chunks(message_id: str) -> list[Chunk]:
    """The chunks of a stored assistant message (two queries: it, its usage)."""
    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if message is None:
        raise NotFound("No such message.")
    reply = ReplyState(
        message_id=str(message.pk),
        conversation_id=str(message.conversation_id),
        user_message_id=str(message.parent_id or ""),  # (the user message it answers)
        user_id=message.conversation.owner_id,
        spec=model_spec(message.model),
        context=[],
    )
    chunks = reply.opening_chunks()
    if message.status == Message.Status.STREAMING:
        return chunks  # (not ended: nothing more to say yet)
    chunks = chunks[:1] + replay_chunks(message.parts or from_text(message.content, message.reasoning))
    reply.step.open = True
    _settle(reply, message)
    reply.ttft_ms, reply.duration_ms = message.ttft_ms, message.duration_ms
    rows = list(message.usage.all())
    usage = total_usage(rows)
    reply.calls = [] if usage is None else [ModelCall(reply.spec, usage)]
    reply.cost = cost_string(total_cost(rows))
    return chunks + reply.closing_chunks()


def _settle(reply: ReplyState, message: Message) -> None:
    status = message.status
    if status == Message.Status.COMPLETE:
        reply.complete()
        reply.finish_reason = message.finish_reason or "stop"
    elif status == Message.Status.AWAITING_APPROVAL:
        reply.await_approval()
    elif status == Message.Status.CANCELLED:
        reply.cancel(message.error_code)
    elif status == Message.Status.INTERRUPTED:
        reply.interrupt()
    else:
        error = StreamingError(message.error_text or None)
        error.code = message.error_code or "error"
        reply.fail(error)
