"""The API's JSON shapes (snake_case; the stream's metadata is camelCase, as the AI SDK's is)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db.models import prefetch_related_objects

from streaming.branches import shown_branch, versions
from streaming.events import Usage as Counts
from streaming.events import usage_sum
from streaming.models import Conversation, Message, Usage
from streaming.parts import from_text
from streaming.pricing import cost_string


def total_usage(rows: Sequence[Usage]) -> Counts | None:
    """The usage of a reply: the sum of its rows (one per model call: tools, a continued reply)."""
    return usage_sum(rows)


def total_cost(rows: Sequence[Usage]) -> Decimal | None:
    """The cost of a reply's rows; None when there are none, or one has no known price."""
    costs = [row.total_cost for row in rows]
    if not costs or any(cost is None for cost in costs):
        return None
    return sum((cost for cost in costs if cost is not None), Decimal(0))


def usage_dict(usage: Counts | None) -> dict[str, Any] | None:
    return None if usage is None else usage.as_dict()


def _parts_from_text(message: Message) -> list[dict[str, Any]]:
    if message.role == Message.Role.ASSISTANT:
        return from_text(message.content, message.reasoning)
    return [{"type": "text", "text": message.content}]


def message_dict(message: Message, rows: Sequence[Usage] = ()) -> dict[str, Any]:
    has_error = message.status in (Message.Status.ERROR, Message.Status.INTERRUPTED)
    return {
        "id": str(message.id),
        "parent": None if message.parent_id is None else str(message.parent_id),
        "role": message.role,
        "content": message.content,
        "reasoning": message.reasoning,
        # What it said and did, in order (the AI SDK's UI message parts: a client shows them as it
        # showed the stream); a message stored before messages had parts gets them from its text.
        "parts": message.parts or _parts_from_text(message),
        "status": message.status,
        "model": message.model,
        "finish_reason": message.finish_reason,
        "error": {"code": message.error_code, "message": message.error_text} if has_error else None,
        "usage": usage_dict(total_usage(rows)),
        "cost": cost_string(total_cost(rows)),
        "ttft_ms": message.ttft_ms,
        "duration_ms": message.duration_ms,
        "created_at": message.created_at.isoformat(),
    }


def conversation_dict(conversation: Conversation) -> dict[str, Any]:
    """``cost`` is the ``total_cost`` annotation of ``Conversation.objects.with_cost()`` (None without it)."""
    return {
        "id": str(conversation.id),
        "title": conversation.title,
        "model": conversation.model,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "cost": cost_string(getattr(conversation, "total_cost", None)),
    }


def conversation_detail(conversation: Conversation, through: uuid.UUID | None = None) -> dict[str, Any]:
    """The conversation with the messages of the branch through ``through`` (by default its newest
    message), each with its ``versions``; two queries (messages, their usage) whatever their number."""
    messages = list(conversation.messages.order_by("created_at", "pk"))
    shown = shown_branch(messages, through)
    prefetch_related_objects(shown, "usage")
    versions_of = versions(messages)
    data = conversation_dict(conversation)
    data["messages"] = [
        {**message_dict(m, list(m.usage.all())), "versions": versions_of[m.pk]} for m in shown
    ]
    return data
