"""Start a reply: validate, store the user message and the reply's message, build the context.

Views parse requests and call these functions; the relay drives the provider from ``start_reply`` to
``saving.save_reply``. A reply costs a constant number of queries, whatever its length: a few to
start, a few to save, never one per token.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from streaming import branches, budgets, limits
from streaming.conf import ModelSpec, app_settings
from streaming.database import write_transaction
from streaming.exceptions import InvalidRequest, MessageTooLong, NotContinuable, NotFound, ReplyInProgress
from streaming.models import CLIENT_ID_MAX_LENGTH, Conversation, Message
from streaming.parts import Part, from_text, is_tool, message_context
from streaming.providers.base import ChatMessage
from streaming.reply import ReplyState
from streaming.titles import make_title
from streaming.tools.definition import Tool
from streaming.tools.registry import tools_for
from streaming.upkeep import take_over_stale

logger = logging.getLogger(__name__)

_AFTER = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class ChatInput:
    """A validated chat request, whichever body it came in (simple or ``useChat``).

    ``conversation_id`` is a UUID or a client's own chat id; ``continued`` names a reply cut short
    that the model is asked to go on with. Where the message goes in the conversation's tree
    (``streaming.branches``): after ``parent`` (by default the newest message), as a new version of
    the user message ``edit``, or, for ``regenerate``, as a new version of the reply ``regenerated``
    (by default the newest message's).
    """

    conversation_id: uuid.UUID | str | None
    text: str
    model_id: str | None
    reasoning: bool = False
    regenerate: bool = False
    continued: uuid.UUID | None = None
    parent: uuid.UUID | None = None
    edit: uuid.UUID | None = None
    regenerated: uuid.UUID | None = None
    #: A reply whose tool calls await approval, and the user's answers (approval id: approved, reason).
    approved: uuid.UUID | None = None
    answers: dict[str, tuple[bool, str]] | None = None

    @property
    def places(self) -> bool:
        """Whether it says where it goes (rather than after the newest message)."""
        return bool(self.parent or self.edit or self.regenerate)


#: What the model is told when it is asked to go on with a reply that was cut short.
CONTINUE_PROMPT = "Continue your last message exactly where it stopped, without repeating any of it."
#: Why a tool call was not run when the conversation went on without an answer to its approval request.
UNANSWERED = "No answer: the conversation went on."


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

    Raises the API's errors (400, 402, 404, 409, 413, 429) before anything is stored. The reply counts
    toward the user's limits (``streaming.limits``) and holds its worst-case cost against their budget
    (``budgets.reserve``) until it is saved.
    """
    if chat.approved is not None:
        from streaming.approvals import ApprovalsPending, answer_approvals

        try:
            return answer_approvals(user, chat.approved, chat.answers or {}, chat.model_id, chat.reasoning)
        except ApprovalsPending as exc:
            raise InvalidRequest(f"{exc} Answer them all in one request.", field="messages") from None
    with limits.starting(user.pk):
        if chat.continued is not None:
            return _continue_reply(user, chat, chat.continued)
        return _new_reply(user, chat)


def _new_reply(user: Any, chat: ChatInput) -> ReplyState:
    spec = resolve_model(chat.model_id)
    _check_text(chat)
    reasoning = chat.reasoning and spec.reasoning
    with write_transaction():
        conversation, created = _lock_conversation(user, chat.conversation_id, spec, make_title(chat.text))
        if not created:
            close_approvals(_refuse_if_streaming(conversation))
        tools = offered_tools(spec)
        turn = _plan(conversation, created, chat, tools=bool(tools))
        now = timezone.now()
        new, question = _question(conversation, turn, chat.text, now)
        answered_at = now + _AFTER  # the reply sorts after the message it answers
        assistant = Message(
            conversation=conversation,
            parent_id=question.id,
            role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING,
            model=spec.id,
            created_at=answered_at,
            updated_at=answered_at,
        )
        context = _with_system_prompt([*turn.history, ChatMessage("user", question.content)])
        budget = budgets.reserve(user.pk, assistant.id, spec, context, reasoning=reasoning, tools=bool(tools))
        Message.objects.bulk_create([*new, assistant])
        if not created:  # (a new one has its model, title and time already)
            fields = {"model": spec.id, "updated_at": now}
            if not conversation.title:
                fields["title"] = make_title(question.content)
            Conversation.objects.filter(pk=conversation.pk).update(**fields)
    return ReplyState(
        message_id=str(assistant.id),
        conversation_id=str(conversation.id),
        user_message_id=str(question.id),
        user_id=user.pk,
        spec=spec,
        context=context,
        reasoning_requested=reasoning,
        budget=budget,
        user=user,
        tools=tools,
        max_steps=app_settings.max_steps,
    )


def _check_text(chat: ChatInput) -> None:
    limit = app_settings.max_message_chars
    if len(chat.text) > limit:
        raise MessageTooLong(
            f"The message has {len(chat.text):,} characters; the limit is {limit:,}.", field="message"
        )
    if not chat.regenerate and not chat.text.strip():
        raise InvalidRequest("The message is empty.", field="message")


def _plan(conversation: Conversation, created: bool, chat: ChatInput, *, tools: bool) -> branches.Turn:
    """Where the message goes, and the history before it (a new conversation's first: none to read)."""
    if created and not chat.places:
        return branches.Turn(None, [])
    return branches.plan_turn(
        conversation.pk,
        app_settings.history_messages,
        parent=chat.parent,
        edit=chat.edit,
        regenerate=chat.regenerate,
        regenerated=chat.regenerated,
        tools=tools,
    )


def _question(
    conversation: Conversation, turn: branches.Turn, text: str, now: datetime
) -> tuple[list[Message], Message]:
    """The user message the reply answers: a new one (to store), or, to regenerate, the one it had."""
    if turn.question is not None:
        return [], Message(id=turn.question.id, content=turn.question.content)
    user_message = Message(
        conversation=conversation,
        parent_id=turn.parent_id,
        role=Message.Role.USER,
        content=text,
        created_at=now,
    )
    return [user_message], user_message


def _continue_reply(user: Any, chat: ChatInput, message_id: uuid.UUID) -> ReplyState:
    """Ask the model to go on with a reply that was cut short (stopped, failed or interrupted): the new
    text is appended to the same message, and the call gets a usage row of its own."""
    with write_transaction():
        reply = lock_reply(user, message_id, field="continue")
        if reply.status not in CUT_SHORT:
            raise NotContinuable(f"Only a reply cut short can be continued; this one is {reply.status}.")
        spec = resolve_model(chat.model_id or reply.model)
        reasoning = chat.reasoning and spec.reasoning
        tools = offered_tools(spec)
        parts = stored_parts(reply)
        history = history_before(reply.conversation_id, reply.pk, tools=bool(tools))
        said = message_context(reply.role, reply.content, parts, tools=bool(tools))
        context = _with_system_prompt([*history, *said, ChatMessage("user", CONTINUE_PROMPT)])
        return going_on(user, reply, spec, context, reasoning, tools, before=parts, merge_text=True)


def lock_reply(user: Any, message_id: uuid.UUID, *, field: str) -> Message:
    """The user's assistant message, its conversation locked (in the caller's transaction): 404 for
    anyone else's, 409 while a reply streams in its conversation."""
    reply = (
        Message.objects.select_related("conversation")
        .filter(pk=message_id, role=Message.Role.ASSISTANT, conversation__owner_id=user.pk)
        .first()
    )
    if reply is None:
        raise NotFound("No such reply.", field=field)
    _refuse_if_streaming(Conversation.objects.select_for_update().get(pk=reply.conversation_id))
    reply.refresh_from_db()
    return reply


def going_on(
    user: Any,
    reply: Message,
    spec: ModelSpec,
    context: list[ChatMessage],
    reasoning: bool,
    tools: dict[str, Tool],
    **state: Any,
) -> ReplyState:
    """A stored reply streams again (continued, or its calls approved), in the transaction that locked
    its conversation: its budget reservation, its status, and its state (``state``: what it goes on with)."""
    budget = budgets.reserve(user.pk, reply.pk, spec, context, reasoning=reasoning, tools=bool(tools))
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.STREAMING, updated_at=timezone.now())
    return ReplyState(
        message_id=str(reply.pk),
        conversation_id=str(reply.conversation_id),
        user_message_id=str(reply.parent_id or ""),  # (the user message it answers)
        user_id=user.pk,
        spec=spec,
        context=context,
        reasoning_requested=reasoning,
        budget=budget,
        user=user,
        tools=tools,
        max_steps=app_settings.max_steps,
        **state,
    )


def offered_tools(spec: ModelSpec) -> dict[str, Tool]:
    """The tools a reply of ``spec`` may call, by name."""
    return {t.name: t for t in tools_for(spec.id)}


def stored_parts(message: Message) -> list[Part]:
    return message.parts or from_text(message.content, message.reasoning)


CUT_SHORT = (Message.Status.CANCELLED, Message.Status.ERROR, Message.Status.INTERRUPTED)


def _refuse_if_streaming(conversation: Conversation) -> list[tuple[Any, list[Part]]]:
    """409 while a reply streams in the conversation (one whose process died is taken over first); the
    replies that await approval (id, parts), in the same query."""
    take_over_stale(conversation.messages.all())
    busy = conversation.messages.filter(
        status__in=(Message.Status.STREAMING, Message.Status.AWAITING_APPROVAL)
    ).values_list("pk", "status", "parts")
    waiting = []
    for pk, status, parts in busy:
        if status == Message.Status.STREAMING:
            raise ReplyInProgress()
        waiting.append((pk, parts))
    return waiting


def close_approvals(waiting: list[tuple[Any, list[Part]]]) -> None:
    """The conversation goes on without the user answering these replies' approval requests: their
    calls are denied, and the replies complete (nothing resumes them later)."""
    for pk, parts in waiting:
        for part in parts:
            if is_tool(part) and part.get("state") == "approval-requested":
                part["state"] = "output-denied"
                part["approval"] = {**part.get("approval", {}), "approved": False, "reason": UNANSWERED}
        Message.objects.filter(pk=pk, status=Message.Status.AWAITING_APPROVAL).update(
            status=Message.Status.COMPLETE, parts=parts
        )


def _with_system_prompt(context: list[ChatMessage]) -> list[ChatMessage]:
    if app_settings.system_prompt:
        return [ChatMessage("system", app_settings.system_prompt), *context]
    return context


def _lock_conversation(
    user: Any, ref: uuid.UUID | str | None, spec: ModelSpec, title: str
) -> tuple[Conversation, bool]:
    """The conversation, locked for this reply, and whether it was created now (it has no messages).

    An unknown id starts that conversation: a UUID becomes its id, any other id (a client's own, as
    the AI SDK's ``useChat`` makes them) is kept as its ``client_id``, unique for its owner.
    """
    if ref is None:
        return Conversation.objects.create(owner=user, model=spec.id, title=title), True
    locked = Conversation.objects.select_for_update()
    if isinstance(ref, uuid.UUID):
        conversation = locked.filter(pk=ref).first()
        named: dict[str, Any] = {"id": ref}
    else:
        conversation = locked.filter(owner=user, client_id=ref).first()
        named = {"client_id": ref}
    if conversation is None:
        try:
            with transaction.atomic():  # (a savepoint: PostgreSQL aborts a transaction that failed)
                return Conversation.objects.create(owner=user, model=spec.id, title=title, **named), True
        except IntegrityError:
            # The same new conversation, started by another request at this moment: it replies there.
            raise ReplyInProgress() from None
    if conversation.owner_id != user.pk:
        raise NotFound("No such conversation.")
    return conversation, False


def find_conversation(owner_id: Any, ref: str) -> Conversation | None:
    """The owner's conversation by its UUID or its client's chat id (None for what can be neither: a
    NUL character, which PostgreSQL cannot even compare, or an id longer than a chat id may be)."""
    try:
        return Conversation.objects.filter(pk=uuid.UUID(ref), owner_id=owner_id).first()
    except ValueError:
        pass
    if len(ref) > CLIENT_ID_MAX_LENGTH or not ref.isprintable():
        return None
    return Conversation.objects.filter(client_id=ref, owner_id=owner_id).first()


def history_before(conversation_id: Any, reply_id: Any, *, tools: bool) -> list[ChatMessage]:
    """The context before a stored reply: the newest ``HISTORY_MESSAGES`` of the messages it answers
    (its branch of the conversation), oldest first, with their tool calls and results."""
    limit = app_settings.history_messages
    return branches.context_of(branches.lineage(conversation_id, reply_id, limit + 1)[1:], limit, tools=tools)


def parse_title(data: dict[str, object]) -> str:
    """The new title of a rename request."""
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise InvalidRequest("'title' must be a non-empty string.", field="title")
    if len(title) > 200:
        raise InvalidRequest("'title' is longer than 200 characters.", field="title")
    if "\x00" in title:
        raise InvalidRequest("'title' contains a NUL character.", field="title")
    return " ".join(title.split())
