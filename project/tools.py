"""The demo project's tools: what the model may call, as the user it answers (``STREAMING["TOOLS"]``).

Two small examples of the Django side: one that needs nothing, and one that reads the database as the
requesting user, through the ORM, and so can only find that user's own conversations.
"""

from __future__ import annotations

from typing import Annotated, Any

from django.db.models import Q
from django.utils import timezone
from pydantic import Field

import streaming
from streaming.models import Conversation

#: The most conversations a search gives the model.
SEARCH_LIMIT = 10


@streaming.tool
def current_time() -> str:
    """The current date and time on the server, in ISO 8601 with its UTC offset and the time zone's name."""
    now = timezone.localtime()
    return f"{now.isoformat(timespec='seconds')} ({now.tzname()})"


@streaming.tool
def search_conversations(
    query: Annotated[str, Field(min_length=1, max_length=200, description="Words to look for.")], user: Any
) -> list[dict[str, str]]:
    """Search the user's own conversations: those whose title or messages contain the words, newest
    first, as their titles and ids."""
    found = (
        Conversation.objects.filter(owner=user)
        .filter(Q(title__icontains=query) | Q(messages__content__icontains=query))
        .distinct()
        .order_by("-updated_at")
        .values_list("id", "title")[:SEARCH_LIMIT]
    )
    return [{"id": str(pk), "title": title} for pk, title in found]
