"""Store a reply's outcome, renew the leases of live replies, and take over the replies of dead processes.

A reply is saved once, when it ends: its message (text, parts, status, timings) and one ``Usage`` row
per model call with its cost snapshot, in one transaction, whatever its length; the reply's budget
reservation gives way to its usage rows in that transaction, and the reply stops counting toward the
user's concurrent replies once it commits. The save stands on anything the stream brought: a NUL character
(PostgreSQL's text cannot hold one) is dropped, a conversation deleted meanwhile leaves the usage row
without it (the cost still counts), and a reply already taken over by another process (its lease ran
out) is left to that process's outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from streaming import budgets, limits
from streaming.branches import context_of, lineage
from streaming.conf import app_settings, model_spec
from streaming.costs import OverrideBook
from streaming.database import write_transaction
from streaming.models import Conversation, Message, Usage
from streaming.parts import Part, Parts, from_text, text_of
from streaming.pricing import Price, cost_string
from streaming.providers.base import ChatMessage
from streaming.reply import ReplyState

logger = logging.getLogger(__name__)


def clean_text(text: str) -> str:
    return text.replace("\x00", "") if "\x00" in text else text


def clean_parts(value: Any) -> Any:
    """The parts without NUL characters (PostgreSQL's JSON cannot hold ``\\u0000`` either)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [clean_parts(item) for item in value]
    if isinstance(value, dict):
        return {clean_text(str(key)): clean_parts(item) for key, item in value.items()}
    return value


def save_reply(reply: ReplyState, *, lease_before: datetime | None = None) -> bool:
    """Persist the outcome of a reply: its message, its usage row, the conversation's time.

    Only a ``streaming`` message is written (with ``lease_before``: only one whose lease ran out
    before it, for a takeover); False when there was none, because another process took the reply
    over. A reply whose message or conversation was deleted meanwhile still gets its usage row.
    """
    now = timezone.now()
    prices = _prices(reply, now)  # priced once, with the snapshot stored on the rows and sent in `finish`
    streaming = Message.objects.filter(pk=reply.message_id, status=Message.Status.STREAMING)
    if lease_before is not None:
        streaming = streaming.filter(updated_at__lt=lease_before)
    try:
        saved = _write(reply, streaming, prices, now, takeover=lease_before is not None)
    except IntegrityError:
        # Deleted between the UPDATE and the usage rows' INSERT: once more, and it is gone.
        saved = _write(reply, streaming, prices, now, takeover=lease_before is not None)
    reply.saved = saved
    return saved


def _prices(reply: ReplyState, now: datetime) -> list[Price]:
    """The price of each model call (one query, the overrides, whatever their number); the reply's
    cost, their sum, is what ``finish`` reports."""
    if not reply.calls:
        return []
    book = OverrideBook((call.spec.provider, call.spec.model) for call in reply.calls)
    prices = [book.price(call.usage, call.spec.provider, call.spec.model, now) for call in reply.calls]
    costs = [price.total_cost for price in prices]
    reply.cost = (
        None if any(c is None for c in costs) else cost_string(sum((c for c in costs if c), Decimal(0)))
    )
    return prices


def _write(
    reply: ReplyState, streaming: QuerySet[Message], prices: list[Price], now: datetime, *, takeover: bool
) -> bool:
    answered = reply.answered_by or reply.spec
    error = reply.error
    with write_transaction():
        updated = streaming.update(
            content=clean_text(reply.text),
            reasoning=clean_text(reply.reasoning),
            parts=clean_parts(reply.parts),
            status=reply.status,
            finish_reason=reply.finish_reason,
            model=answered.id,
            error_code=error.code if error else reply.cancel_reason,
            error_text=error.message if error else "",
            ttft_ms=reply.ttft_ms,
            duration_ms=reply.duration_ms,
            updated_at=now,
        )
        if not updated and (takeover or Message.objects.filter(pk=reply.message_id).exists()):
            return False  # another process took it over (or, for a takeover, it came back to life)
        conversation_id: str | None = reply.conversation_id
        if not updated and not Conversation.objects.filter(pk=reply.conversation_id).exists():
            conversation_id = None
        if prices:
            Usage.objects.bulk_create(
                Usage(
                    user_id=reply.user_id,
                    conversation_id=conversation_id,
                    message_id=reply.message_id if updated else None,
                    provider=call.spec.provider,
                    model=call.spec.model,
                    ttft_ms=call.ttft_ms,
                    duration_ms=call.duration_ms,
                    created_at=now,
                    priced_at=now,
                    **call.usage.as_dict(),
                    **price.as_fields(),
                )
                for call, price in zip(reply.calls, prices, strict=True)
            )
        if reply.budget is not None or takeover:  # (a reply that reserved, or may have: see budgets)
            budgets.settle(reply.message_id)
        if conversation_id is not None:
            Conversation.objects.filter(pk=conversation_id).update(updated_at=now)
    # Streams no more, once committed: the outer transaction's, when one is open (a takeover by a
    # starting reply, which a refusal rolls back).
    transaction.on_commit(lambda: limits.reply_ended(reply.user_id))
    return True


# -- leases -------------------------------------------------------------------------------------------


def renew_leases(message_ids: Iterable[str]) -> int:
    """Renew the lease of every reply streaming in this process: one UPDATE, whatever their number."""
    ids = list(message_ids)
    if not ids:
        return 0
    with write_transaction():
        return Message.objects.filter(pk__in=ids, status=Message.Status.STREAMING).update(
            updated_at=timezone.now()
        )


def checkpoint(message_id: str, parts: list[Part]) -> None:
    """Store a reply's parts so far, for a log that dies with the process (the in-memory one): a reply
    taken over after a crash keeps what its user had read, up to one checkpoint behind."""
    with write_transaction():
        Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
            content=clean_text(text_of(parts)),
            reasoning=clean_text(text_of(parts, "reasoning")),
            parts=clean_parts(parts),
        )


# -- takeovers ----------------------------------------------------------------------------------------


def stale_replies(messages: QuerySet[Message], older_than: float) -> tuple[list[Message], datetime]:
    cutoff = timezone.now() - timedelta(seconds=older_than)
    found = messages.filter(status=Message.Status.STREAMING, updated_at__lt=cutoff)
    return list(found.select_related("conversation")), cutoff


def take_over(
    message: Message, cutoff: datetime, logged: list[Part] | None = None, *, stopped: bool = False
) -> ReplyState | None:
    """End a reply whose process died: ``interrupted`` (``cancelled`` when its user asked it to stop),
    with what it had, the parts of its reply log (``logged``) or of its message, whichever says more,
    and an estimated usage row. None when it was not stale after all."""
    stored = message.parts or from_text(message.content, message.reasoning)
    parts = max(logged or [], stored, key=lambda p: len(text_of(p)) + len(text_of(p, "reasoning")) + len(p))
    reply = ReplyState(
        message_id=str(message.pk),
        conversation_id=str(message.conversation_id),
        user_message_id="",
        user_id=message.conversation.owner_id,
        spec=model_spec(message.model),
        context=_context_of(message),
        before=parts,
    )
    reply.seen_output(len(text_of(parts)), len(text_of(parts, "reasoning")), message.ttft_ms)
    if stopped:
        reply.cancel("stopped")
    else:
        reply.interrupt()
    reply.duration_ms = max(0, int((message.updated_at - message.created_at).total_seconds() * 1000))
    for call in reply.calls:
        call.duration_ms = reply.duration_ms
    return reply if save_reply(reply, lease_before=cutoff) else None


def logged_parts(chunks: list[dict[str, Any]]) -> list[Part]:
    """The parts that a reply log's chunks make."""
    parts = Parts()
    for chunk in chunks:
        parts.add(chunk)
    return parts.result()


def _context_of(message: Message) -> list[ChatMessage]:
    """The stored history the reply answered (bounded as a reply's context is), for its input estimate."""
    limit = app_settings.history_messages
    context = context_of(lineage(message.conversation_id, message.pk, limit + 1)[1:], limit)
    if app_settings.system_prompt:
        context.insert(0, ChatMessage("system", app_settings.system_prompt))
    return context
