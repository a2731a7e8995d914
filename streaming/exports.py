"""A conversation as a file to keep: Markdown to read (the branch shown), JSON to process (every branch).

Both are downloads (``Content-Disposition: attachment``) named after the conversation's title. The
Markdown is what a reader saw: each message under a heading saying who wrote it, a reply's
reasoning folded away, and how a reply ended when it did not complete. The JSON has every message of
every branch, as the API gives them, with the ids of the branch shown.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import prefetch_related_objects
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.text import slugify

from streaming.branches import shown_branch
from streaming.exceptions import InvalidRequest
from streaming.models import Conversation, Message
from streaming.serializers import conversation_dict, message_dict
from streaming.templatetags.streaming_costs import usd

FORMATS = ("md", "json")
ENDINGS = {
    Message.Status.CANCELLED: "Stopped before it was complete.",
    Message.Status.INTERRUPTED: "Interrupted: the server stopped before the reply was complete.",
    Message.Status.STREAMING: "Still being written when this was exported.",
}


def download(conversation: Conversation, kind: str, through: uuid.UUID | None = None) -> HttpResponse:
    """The file of ``conversation`` in format ``kind`` (``md`` or ``json``); 400 for another."""
    if kind not in FORMATS:
        raise InvalidRequest("'format' must be md or json.", field="format")
    messages = list(conversation.messages.order_by("created_at", "pk"))
    response: HttpResponse
    if kind == "json":
        prefetch_related_objects(messages, "usage")
        response = JsonResponse(as_json(conversation, messages, through), json_dumps_params={"indent": 2})
    else:
        shown = shown_branch(messages, through)
        response = HttpResponse(as_markdown(conversation, shown), content_type="text/markdown; charset=utf-8")
    name = slugify(conversation.title)[:60] or "conversation"
    response["Content-Disposition"] = f'attachment; filename="{name}.{kind}"'
    return response


def as_json(conversation: Conversation, messages: list[Message], through: uuid.UUID | None) -> dict[str, Any]:
    return {
        **conversation_dict(conversation),
        "exported_at": timezone.now().isoformat(),
        "branch": [str(m.pk) for m in shown_branch(messages, through)],
        "messages": [message_dict(m, list(m.usage.all())) for m in messages],
    }


def as_markdown(conversation: Conversation, shown: list[Message]) -> str:
    title = conversation.title or "Conversation"
    facts = [f"Exported {timezone.localtime():%Y-%m-%d %H:%M}", f"model {conversation.model}"]
    cost = getattr(conversation, "total_cost", None)
    if cost is not None:
        facts.append(f"cost {usd(cost)}")
    parts = [f"# {title}", f"*{' · '.join(facts)}*"]
    for message in shown:
        parts.append(_message_markdown(message))
    return "\n\n".join(parts) + "\n"


def _message_markdown(message: Message) -> str:
    if message.role == Message.Role.USER:
        return f"## You\n\n{message.content}"
    heading = "## Assistant" + (f" ({message.model})" if message.model else "")
    parts = [heading]
    if message.reasoning:
        parts.append(f"<details><summary>Reasoning</summary>\n\n{message.reasoning}\n\n</details>")
    if message.content:
        parts.append(message.content)
    ending = ENDINGS.get(Message.Status(message.status))
    if message.status == Message.Status.ERROR:
        ending = f"Error: {message.error_text or message.error_code}"
    if ending:
        parts.append(f"*{ending}*")
    return "\n\n".join(parts)
