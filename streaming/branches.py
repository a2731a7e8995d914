"""Conversations as trees: the path a reply answers, the branch a reader sees, and the versions of a message.

Each message follows its ``parent``; an edit adds a sibling of the user message it edits, and a
regenerated reply a sibling of the reply: the earlier versions stay, ordered by time. A reply's context
is the path from a root down to the message it answers, read upward in one recursive query
(``lineage``), whatever the number of branches. A reader sees one branch: the path through a chosen
message (by default the conversation's newest) down to the newest message below it; the other
versions of each message on it are listed so that a client can switch to them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import orjson
from django.db import connection

from streaming.exceptions import InvalidRequest, NotFound
from streaming.models import Message
from streaming.parts import Part, message_context
from streaming.providers.base import ChatMessage

_MAX_DEPTH = 1_000_000  # (a guard against a cycle, which parents made in time order cannot form)


@dataclass(frozen=True, slots=True)
class Step:
    """A message on a path, with its distance from where the path was read from (0: that message)."""

    id: uuid.UUID
    parent_id: uuid.UUID | None
    role: str
    content: str
    depth: int
    parts: list[Part] = field(default_factory=list)  # an assistant's tool calls and results, with its text


def lineage(conversation_id: uuid.UUID | str, anchor: uuid.UUID | None, limit: int) -> list[Step]:
    """``anchor`` (the conversation's newest message when None) and its ancestors, nearest first: the
    anchor always, then only messages with text or tool calls, ``limit`` rows at most. One query;
    empty when the anchor is not a message of this conversation."""
    table = connection.ops.quote_name(Message._meta.db_table)
    uuid_field = Message._meta.pk
    assert uuid_field is not None
    conversation = uuid_field.get_db_prep_value(uuid.UUID(str(conversation_id)), connection)
    if anchor is None:
        start = f"(SELECT id FROM {table} WHERE conversation_id = %s ORDER BY created_at DESC LIMIT 1)"
        start_params = [conversation]
    else:
        start, start_params = "%s", [uuid_field.get_db_prep_value(anchor, connection)]
    sql = f"""
        WITH RECURSIVE path(id, parent_id, depth) AS (
            SELECT id, parent_id, 0 FROM {table} WHERE conversation_id = %s AND id = {start}
            UNION ALL
            SELECT m.id, m.parent_id, path.depth + 1 FROM {table} m JOIN path ON m.id = path.parent_id
            WHERE path.depth < %s
        )
        SELECT m.id, m.parent_id, m.role, m.content, path.depth, m.parts
        FROM path JOIN {table} m ON m.id = path.id
        WHERE path.depth = 0 OR m.content <> '' OR CAST(m.parts AS TEXT) <> '[]'
        ORDER BY path.depth LIMIT %s
    """  # (the table name is the model's; every value is a parameter)
    with connection.cursor() as cursor:
        cursor.execute(" ".join(sql.split()), [conversation, *start_params, _MAX_DEPTH, limit])
        rows = cursor.fetchall()
    return [
        Step(_as_uuid(id_), _as_uuid(parent) if parent else None, role, content, depth, _as_parts(parts))
        for id_, parent, role, content, depth, parts in rows
    ]


def _as_parts(value: object) -> list[Part]:
    """A message's parts as the driver returns them: JSON text (SQLite) or already parsed."""
    parsed = orjson.loads(value) if isinstance(value, (str, bytes)) else value
    return parsed if isinstance(parsed, list) else []


def _as_uuid(value: object) -> uuid.UUID:
    """A UUID as the database driver returns it: a UUID (PostgreSQL) or 32 hex digits (SQLite)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def context_of(steps: Iterable[Step], limit: int, *, tools: bool = False) -> list[ChatMessage]:
    """The newest ``limit`` of ``steps`` that say something (text, or tool calls), oldest first: a
    context for the model, with the tool calls and results of each reply (``message_context``)."""
    said = [(step, message_context(step.role, step.content, step.parts, tools=tools)) for step in steps]
    chosen = [messages for _, messages in said if messages][:limit]
    return [message for messages in reversed(chosen) for message in messages]


@dataclass(frozen=True, slots=True)
class Turn:
    """Where a new message goes in a conversation's tree, and what the model is given before it.

    ``parent_id`` is the parent of the new user message, or, when a reply is regenerated, the user
    message that it answers again (``question``).
    """

    parent_id: uuid.UUID | None
    history: list[ChatMessage]
    question: Step | None = None


def plan_turn(
    conversation_id: uuid.UUID | str,
    history_messages: int,
    *,
    parent: uuid.UUID | None = None,
    edit: uuid.UUID | None = None,
    regenerate: bool = False,
    regenerated: uuid.UUID | None = None,
    tools: bool = False,
) -> Turn:
    """The place of a new message (after ``parent``, by default the newest message), of a new version
    of the user message ``edit``, or of a new version of the reply ``regenerated`` (by default the
    newest message's reply): one query."""
    if regenerate:
        steps = lineage(conversation_id, regenerated, history_messages + 2)
        if regenerated is not None and not steps:
            raise NotFound("No such reply in this conversation.", field="regenerate")
        question = next((step for step in steps[:2] if step.role == Message.Role.USER), None)
        if question is None:
            raise InvalidRequest("There is no user message to answer again.", field="regenerate")
        above = [step for step in steps if step.depth > question.depth]
        return Turn(question.id, context_of(above, history_messages, tools=tools), question)
    if edit is not None:
        steps = lineage(conversation_id, edit, history_messages + 1)
        if not steps or steps[0].role != Message.Role.USER:
            raise NotFound("No such message of yours in this conversation.", field="edit")
        return Turn(steps[0].parent_id, context_of(steps[1:], history_messages, tools=tools))
    steps = lineage(conversation_id, parent, history_messages + 1)
    if parent is not None and not steps:
        raise NotFound("No such message in this conversation.", field="parent")
    return Turn(steps[0].id if steps else None, context_of(steps, history_messages, tools=tools))


# -- the branch a reader sees ----------------------------------------------------------------------


def shown_branch(messages: Sequence[Message], through: uuid.UUID | None = None) -> list[Message]:
    """The path through ``through`` (the newest message when None or not found) down to the newest
    message below it, root first. ``messages`` are all of a conversation's, oldest first."""
    if not messages:
        return []
    by_id = {m.pk: m for m in messages}
    start = by_id.get(through) if through is not None else None
    leaf = _newest_below(messages, start) if start is not None else messages[-1]
    path = [leaf]
    while path[-1].parent_id is not None and path[-1].parent_id in by_id and len(path) <= len(messages):
        path.append(by_id[path[-1].parent_id])
    return path[::-1]


def _newest_below(messages: Sequence[Message], start: Message) -> Message:
    """The newest message in ``start``'s subtree: always a leaf, as a child is newer than its parent."""
    below = {start.pk}
    newest = start
    for message in messages:  # oldest first: a parent is met before its children
        if message.parent_id in below:
            below.add(message.pk)
            newest = message
    return newest


def versions(messages: Sequence[Message]) -> dict[uuid.UUID, list[str]]:
    """Each message's versions: the ids of the messages with its parent (itself included), oldest first.
    Versions of a first message are the conversation's first messages."""
    groups: dict[uuid.UUID | None, list[str]] = {}
    for message in messages:
        groups.setdefault(message.parent_id, []).append(str(message.pk))
    return {message.pk: groups[message.parent_id] for message in messages}
