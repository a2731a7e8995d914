"""Store a reply's outcome, renew the leases of live replies, and take over the replies of dead processes.

A reply is saved once, when it ends: its message (text, status, timings) and one ``Usage`` row with
the cost snapshot, in one transaction, whatever its length; the reply's budget reservation gives way
to its usage row in that transaction, and the reply stops counting toward the user's concurrent
replies once it commits. The save stands on anything the stream brought: a NUL character
(PostgreSQL's text cannot hold one) is dropped, a conversation deleted meanwhile leaves the usage row
without it (the cost still counts), and a reply already taken over by another process (its lease ran
out) is left to that process's outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from streaming import budgets, limits
from streaming.conf import app_settings, model_spec
from streaming.costs import price_call
from streaming.database import write_transaction
from streaming.events import estimate_tokens
from streaming.models import Conversation, Message, Usage
from streaming.pricing import Price, cost_string
from streaming.providers.base import ChatMessage
from streaming.reply import ReplyState

logger = logging.getLogger(__name__)


def clean_text(text: str) -> str:
    return text.replace("\x00", "") if "\x00" in text else text


def save_reply(reply: ReplyState, *, lease_before: datetime | None = None) -> bool:
    """Persist the outcome of a reply: its message, its usage row, the conversation's time.

    Only a ``streaming`` message is written (with ``lease_before``: only one whose lease ran out
    before it, for a takeover); False when there was none, because another process took the reply
    over. A reply whose message or conversation was deleted meanwhile still gets its usage row.
    """
    answered = reply.answered_by or reply.spec
    now = timezone.now()
    price: Price | None = None
    if reply.usage is not None:  # priced once, with the snapshot stored on the row and sent in `finish`
        price = price_call(reply.usage, answered.provider, answered.model, now)
        reply.cost = cost_string(price.total_cost)
    streaming = Message.objects.filter(pk=reply.message_id, status=Message.Status.STREAMING)
    if lease_before is not None:
        streaming = streaming.filter(updated_at__lt=lease_before)
    try:
        saved = _write(reply, streaming, price, now, takeover=lease_before is not None)
    except IntegrityError:
        # Deleted between the UPDATE and the usage row's INSERT: once more, and it is gone.
        saved = _write(reply, streaming, price, now, takeover=lease_before is not None)
    reply.saved = saved
    return saved


def _write(
    reply: ReplyState, streaming: QuerySet[Message], price: Price | None, now: datetime, *, takeover: bool
) -> bool:
    answered = reply.answered_by or reply.spec
    error = reply.error
    with write_transaction():
        updated = streaming.update(
            content=clean_text(reply.text),
            reasoning=clean_text(reply.reasoning),
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
        if reply.usage is not None and price is not None:
            Usage.objects.create(
                user_id=reply.user_id,
                conversation_id=conversation_id,
                message_id=reply.message_id if updated else None,
                provider=answered.provider,
                model=answered.model,
                ttft_ms=reply.ttft_ms,
                duration_ms=reply.duration_ms,
                created_at=now,
                priced_at=now,
                **reply.usage.as_dict(),
                **price.as_fields(),
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


def checkpoint(message_id: str, text: str, reasoning: str) -> None:
    """Store a reply's text so far, for a log that dies with the process (the in-memory one): a reply
    taken over after a crash keeps what its user had read, up to one checkpoint behind."""
    with write_transaction():
        Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
            content=clean_text(text), reasoning=clean_text(reasoning)
        )


# -- takeovers ----------------------------------------------------------------------------------------


def stale_replies(messages: QuerySet[Message], older_than: float) -> tuple[list[Message], datetime]:
    cutoff = timezone.now() - timedelta(seconds=older_than)
    found = messages.filter(status=Message.Status.STREAMING, updated_at__lt=cutoff)
    return list(found.select_related("conversation")), cutoff


def take_over(
    message: Message, cutoff: datetime, text: tuple[str, str] = ("", ""), *, stopped: bool = False
) -> ReplyState | None:
    """End a reply whose process died: ``interrupted`` (``cancelled`` when its user asked it to stop),
    with the longer of ``text`` (from the reply log) and what the message holds, and an estimated usage
    row. None when it was not stale after all."""
    reply = ReplyState(
        message_id=str(message.pk),
        conversation_id=str(message.conversation_id),
        user_message_id="",
        user_id=message.conversation.owner_id,
        spec=model_spec(message.model),
        context=_context_of(message),
    )
    logged_text, logged_reasoning = text
    for parts, longer in (
        (reply.text_parts, max(logged_text, message.content, key=len)),
        (reply.reasoning_parts, max(logged_reasoning, message.reasoning, key=len)),
    ):
        if longer:
            parts.append(longer)
    reply.ttft_ms = message.ttft_ms
    if stopped:
        reply.cancel("stopped")
    else:
        reply.interrupt()
    reply.duration_ms = max(0, int((message.updated_at - message.created_at).total_seconds() * 1000))
    if not reply.has_output:
        reply.usage = None  # nothing came: the provider call cost nothing that can be told
    return reply if save_reply(reply, lease_before=cutoff) else None


def _context_of(message: Message) -> list[ChatMessage]:
    """The stored history the reply answered (bounded as a reply's context is), for its input estimate."""
    rows = (
        Message.objects.filter(conversation_id=message.conversation_id, created_at__lt=message.created_at)
        .exclude(content="")
        .order_by("-created_at")
        .values_list("role", "content")[: app_settings.history_messages]
    )
    context = [ChatMessage(role, content) for role, content in reversed(rows)]
    if app_settings.system_prompt:
        context.insert(0, ChatMessage("system", app_settings.system_prompt))
    return context


def estimated_input(context: list[ChatMessage]) -> int:
    return sum(estimate_tokens(m.content) for m in context)
