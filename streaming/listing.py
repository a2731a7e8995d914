"""A user's conversations a page at a time, newest first, and the ones whose title or text has some words.

Pages are cut by a cursor (the last conversation's time and id), not by an offset: a conversation that
moves to the top while someone scrolls (a reply ended) shifts no page, and a page costs the same
however deep it is. A search matches the title or any message's text, case-insensitively (ASCII
letters only on SQLite, whose LIKE folds no other case), and names the text that matched.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery

from streaming.exceptions import InvalidRequest
from streaming.models import Conversation, Message
from streaming.serializers import conversation_dict

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_QUERY_LENGTH = 200
SNIPPET_CHARS = 120  # around the words found in a message: enough to recognize it


@dataclass(frozen=True, slots=True)
class PageRequest:
    """What a client asked for: ``query`` (empty: all), after ``cursor``, at most ``limit``."""

    query: str = ""
    cursor: tuple[datetime, uuid.UUID] | None = None
    limit: int = PAGE_SIZE

    @classmethod
    def parse(cls, params: Any) -> PageRequest:
        """From a request's GET parameters ``q``, ``cursor`` and ``limit``; 400 for a bad one."""
        query = " ".join(params.get("q", "").split())
        if len(query) > MAX_QUERY_LENGTH:
            raise InvalidRequest(f"'q' is longer than {MAX_QUERY_LENGTH} characters.", field="q")
        if "\x00" in query:
            raise InvalidRequest("'q' contains a NUL character.", field="q")
        raw_limit = params.get("limit") or str(PAGE_SIZE)
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE_SIZE:
            raise InvalidRequest(f"'limit' must be a number from 1 to {MAX_PAGE_SIZE}.", field="limit")
        cursor = params.get("cursor")
        return cls(query, decode_cursor(cursor) if cursor else None, int(raw_limit))


def encode_cursor(conversation: Conversation) -> str:
    raw = f"{conversation.updated_at.isoformat()}|{conversation.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, pk = raw.split("|")
        return datetime.fromisoformat(when), uuid.UUID(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("'cursor' is not one this API gave out.", field="cursor") from None


def conversation_page(owner_id: Any, page: PageRequest) -> dict[str, Any]:
    """``{"conversations": [...], "next": cursor or null}``; with a query, each has its ``match``. Two
    queries at most: the page (with each conversation's cost, and its first matching text), none more."""
    found: QuerySet[Conversation] = Conversation.objects.with_cost().filter(owner_id=owner_id)
    if page.query:
        found = _matching(found, page.query)
    if page.cursor is not None:
        when, pk = page.cursor
        found = found.filter(Q(updated_at__lt=when) | Q(updated_at=when, pk__lt=pk))
    rows = list(found.order_by("-updated_at", "-pk")[: page.limit + 1])
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    listed = []
    for conversation in rows:
        item = conversation_dict(conversation)
        if page.query:  # (None when the title says it)
            in_title = page.query.lower() in conversation.title.lower()
            item["match"] = None if in_title else snippet(getattr(conversation, "match_text", ""), page.query)
        listed.append(item)
    return {"conversations": listed, "next": encode_cursor(rows[-1]) if more else None}


def _matching(found: QuerySet[Conversation], query: str) -> QuerySet[Conversation]:
    in_text = Message.objects.filter(conversation=OuterRef("pk"), content__icontains=query)
    return found.filter(Q(title__icontains=query) | Q(Exists(in_text))).annotate(
        match_text=Subquery(in_text.order_by("created_at").values("content")[:1])
    )


def snippet(text: str | None, query: str) -> str | None:
    """The words around the first place ``text`` has ``query``, on one line; None when it has not."""
    text = text or ""
    at = text.lower().find(query.lower())
    if at < 0:
        return None
    start = max(0, at - SNIPPET_CHARS // 3)
    end = min(len(text), at + len(query) + SNIPPET_CHARS * 2 // 3)
    if start > 0 and " " in text[start:at]:
        start = text.index(" ", start) + 1  # a whole word first
    if end < len(text) and " " in text[at + len(query) : end]:
        end = text.rindex(" ", at + len(query), end)
    line = " ".join(text[start:end].split())
    return ("…" if start > 0 else "") + line + ("…" if end < len(text) else "")
