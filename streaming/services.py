"""Run a reply: validate, store the user message, build the context, and save the outcome.

Views parse requests and call these functions; the transports (``relay``, ``consumers``) drive the
provider between ``start_reply`` and ``save_reply``. A reply costs a constant number of queries,
whatever its length: a few to start, a few to save, never one per token.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from streaming import budgets
from streaming.conf import ModelSpec, app_settings
from streaming.costs import price_call
from streaming.exceptions import InvalidRequest, MessageTooLong, NotFound, ReplyInProgress
from streaming.models import Conversation, Message, Usage, mark_stale_interrupted
from streaming.pricing import cost_string
from streaming.providers.base import ChatMessage
from streaming.reply import ReplyState

logger = logging.getLogger(__name__)

_AFTER = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class ChatInput:
    """A validated chat request, whichever body it came in (simple or ``useChat``)."""

    conversation_id: uuid.UUID | None
    text: str
    model_id: str | None
    reasoning: bool = False
    regenerate: bool = False


def resolve_model(model_id: str | None) -> ModelSpec:
    """The allowlisted model for ``model_id`` (the default when None); InvalidRequest otherwise."""
    chosen = model_id or app_settings.default_model
    spec = app_settings.get_model(chosen) if chosen else None
    if spec is None:
        raise InvalidRequest(f"Unknown model {chosen!r}. Ask /api/models for the list.", field="model")
    if spec.provider not in app_settings.providers:
        raise InvalidRequest(f"The model {chosen!r} has no configured provider.", field="model")
    return spec


def start_reply(user: Any, chat: ChatInput) -> ReplyState:
    """Store the user message and an empty ``streaming`` assistant message; return the reply to stream.

    Raises the domain errors of SPEC §4 (400, 402, 404, 409, 413) before anything is stored.
    """
    spec = resolve_model(chat.model_id)
    if len(chat.text) > app_settings.max_message_chars:
        raise MessageTooLong(
            f"The message has {len(chat.text)} characters; the limit is {app_settings.max_message_chars}.",
            field="message",
        )
    if not chat.regenerate and not chat.text.strip():
        raise InvalidRequest("The message is empty.", field="message")
    remaining = budgets.check_budget(user.pk)
    with write_transaction():
        conversation, created = _lock_conversation(user, chat.conversation_id, spec, make_title(chat.text))
        if not created:
            mark_stale_interrupted(conversation.messages.all(), stale_after=app_settings.stale_after_seconds)
            if conversation.messages.filter(status=Message.Status.STREAMING).exists():
                raise ReplyInProgress()
        now = timezone.now()
        if chat.regenerate:
            user_message = _prepare_regenerate(conversation)
        else:
            user_message = Message(
                conversation=conversation, role=Message.Role.USER, content=chat.text, created_at=now
            )
        answered_at = now + _AFTER  # the reply sorts after the message it answers
        assistant = Message(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING,
            model=spec.id,
            created_at=answered_at,
            updated_at=answered_at,
        )
        Message.objects.bulk_create([assistant] if chat.regenerate else [user_message, assistant])
        history = [] if created else _history(conversation, before=user_message)
        if not created:  # (a new one has its model, title and time already)
            fields = {"model": spec.id, "updated_at": now}
            if not conversation.title:
                fields["title"] = make_title(user_message.content)
            Conversation.objects.filter(pk=conversation.pk).update(**fields)
    context = [*history, ChatMessage("user", user_message.content)]
    if app_settings.system_prompt:
        context.insert(0, ChatMessage("system", app_settings.system_prompt))
    return ReplyState(
        message_id=str(assistant.id),
        conversation_id=str(conversation.id),
        user_message_id=str(user_message.id),
        user_id=user.pk,
        spec=spec,
        context=context,
        reasoning_requested=chat.reasoning and spec.reasoning,
        budget=budgets.guard_for(remaining, spec, context),
    )


def _lock_conversation(
    user: Any, conversation_id: uuid.UUID | None, spec: ModelSpec, title: str
) -> tuple[Conversation, bool]:
    """The conversation, locked for this reply, and whether it was created now (it has no messages)."""
    if conversation_id is None:
        return Conversation.objects.create(owner=user, model=spec.id, title=title), True
    conversation = Conversation.objects.select_for_update().filter(pk=conversation_id).first()
    if conversation is None:
        # An unknown id from a client (useChat makes its own ids) starts that conversation.
        new = Conversation.objects.create(id=conversation_id, owner=user, model=spec.id, title=title)
        return new, True
    if conversation.owner_id != user.pk:
        raise NotFound("No such conversation.")
    return conversation, False


def _prepare_regenerate(conversation: Conversation) -> Message:
    """Drop the last assistant reply and return the user message it answered."""
    last = conversation.messages.order_by("-created_at").first()
    if last is not None and last.role == Message.Role.ASSISTANT:
        last.delete()
        last = conversation.messages.order_by("-created_at").first()
    if last is None or last.role != Message.Role.USER:
        raise InvalidRequest("There is no user message to answer again.", field="trigger")
    return last


def _history(conversation: Conversation, *, before: Message) -> list[ChatMessage]:
    """The stored conversation before ``before``, newest ``HISTORY_MESSAGES`` of it, oldest first."""
    rows = (
        conversation.messages.filter(created_at__lt=before.created_at)
        .exclude(content="")
        .exclude(pk=before.pk)
        .order_by("-created_at")
        .values_list("role", "content")[: app_settings.history_messages]
    )
    return [ChatMessage(role, content) for role, content in reversed(rows)]


def parse_title(data: dict[str, object]) -> str:
    """The new title of a rename request."""
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise InvalidRequest("'title' must be a non-empty string.", field="title")
    if len(title) > 200:
        raise InvalidRequest("'title' is longer than 200 characters.", field="title")
    return " ".join(title.split())


def make_title(text: str, limit: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def save_reply(reply: ReplyState) -> None:
    """Persist the outcome of a reply: the assistant message, its usage row, the conversation's time."""
    answered = reply.answered_by or reply.spec
    error = reply.error
    now = timezone.now()
    price = None
    if reply.usage is not None:  # priced once, with the snapshot stored on the row and sent in `finish`
        price = price_call(reply.usage, answered.provider, answered.model, now)
        reply.cost = cost_string(price.total_cost)
    with write_transaction():
        Message.objects.filter(pk=reply.message_id).update(
            content=reply.text,
            reasoning=reply.reasoning,
            status=reply.status,
            finish_reason=reply.finish_reason,
            model=answered.id,
            error_code=error.code if error else reply.cancel_reason,
            error_text=error.message if error else "",
            ttft_ms=reply.ttft_ms,
            duration_ms=reply.duration_ms,
            updated_at=now,
        )
        if reply.usage is not None and price is not None:
            Usage.objects.create(
                user_id=reply.user_id,
                conversation_id=reply.conversation_id,
                message_id=reply.message_id,
                provider=answered.provider,
                model=answered.model,
                ttft_ms=reply.ttft_ms,
                duration_ms=reply.duration_ms,
                created_at=now,
                priced_at=now,
                **reply.usage.as_dict(),
                **price.as_fields(),
            )
        Conversation.objects.filter(pk=reply.conversation_id).update(updated_at=now)
    reply.saved = True


def touch_reply(message_id: str, text: str, reasoning: str) -> None:
    """Renew a long reply's lease so that it is not taken for one whose process died, and store its
    text so far: if the process dies (a SIGKILL, a redeploy that outlasts the server's graceful
    timeout), the reply that turns ``interrupted`` keeps what the user had already read, up to one
    lease period behind. A reply already saved is left alone (the relay does not wait for this)."""
    with write_transaction():
        Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
            content=text, reasoning=reasoning, updated_at=timezone.now()
        )


_sqlite_writes = threading.RLock()


@contextlib.contextmanager
def write_transaction() -> Iterator[None]:
    """``transaction.atomic()`` for a reply's writes; on SQLite, one at a time in this process.

    SQLite has one writer at a time, and a connection that finds the database locked sleeps and
    retries (longer and longer, up to its ``timeout``): a thousand replies starting at once under
    ASGI (a thread each) then crawl, and some fail with "database is locked". Waiting on a lock
    here instead hands the database to the next writer as soon as it is free.
    """
    if connection.vendor != "sqlite":
        with transaction.atomic():
            yield
        return
    with _sqlite_writes, transaction.atomic():
        yield
