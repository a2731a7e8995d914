"""The JSON shapes of the HTTP API: conversations, messages, usage and costs, in snake_case."""

from __future__ import annotations

from typing import Any

from streaming.models import Conversation, Message, Usage
from streaming.pricing import cost_string


def usage_dict(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "estimated": usage.estimated,
    }


def message_dict(message: Message, usage: Usage | None = None) -> dict[str, Any]:
    has_error = message.status in (Message.Status.ERROR, Message.Status.INTERRUPTED)
    return {
        "id": str(message.id),
        "role": message.role,
        "content": message.content,
        "reasoning": message.reasoning,
        "status": message.status,
        "model": message.model,
        "finish_reason": message.finish_reason,
        "error": {"code": message.error_code, "message": message.error_text} if has_error else None,
        "usage": usage_dict(usage),
        "cost": None if usage is None else cost_string(usage.total_cost),
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


def conversation_detail(conversation: Conversation) -> dict[str, Any]:
    """The conversation with its messages; two queries (messages, their usage) whatever their number."""
    messages = list(conversation.messages.order_by("created_at").prefetch_related("usage"))
    data = conversation_dict(conversation)
    data["messages"] = [message_dict(m, _last_usage(m)) for m in messages]
    return data


def _last_usage(message: Message) -> Usage | None:
    rows = list(message.usage.all())
    return max(rows, key=lambda u: u.created_at) if rows else None
