"""Edits and regenerated replies are versions: earlier ones stay, a reader browses them, and the model's
context is the path of the branch being answered, read in one query whatever the branches."""

from __future__ import annotations

import uuid
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.utils import timezone

from streaming import database
from streaming.models import Conversation, Message
from streaming.providers.scripted import ScriptedProvider, text_reply
from streaming.services import ChatInput, start_reply
from tests import replies
from tests.queries import all_queries

pytestmark = pytest.mark.django_db(transaction=True)


def say(user: Any, text: str, conversation: Any = None, **where: Any) -> dict[str, str]:
    """Send ``text`` (``where``: parent, edit, regenerate, regenerated) and read the reply to its end;
    the ids of the conversation, the user message and the reply."""
    reply = start_reply(user, ChatInput(conversation, text, "scripted:model-a", **where))
    replies.chunks(reply)
    return {"conversation": reply.conversation_id, "user": reply.user_message_id, "reply": reply.message_id}


def sent(call: int = -1) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in ScriptedProvider.calls[call].request.messages]


def shown(api: Client, conversation: str, branch: str | None = None) -> list[dict[str, Any]]:
    query = f"?branch={branch}" if branch else ""
    response = api.get(f"/api/conversations/{conversation}{query}")
    assert response.status_code == 200, response.content
    return list(response.json()["messages"])


def test_an_edit_is_a_new_version_and_the_old_branch_stays(user: Any, api: Client) -> None:
    first = say(user, "Name a colour")
    conversation = uuid.UUID(first["conversation"])
    second = say(user, "Another one", conversation)
    edited = say(user, "Name a fruit instead", conversation, edit=uuid.UUID(first["user"]))

    # The model saw the new version alone: not the branch it replaced.
    assert sent() == [("user", "Name a fruit instead")]
    messages = shown(api, first["conversation"])
    assert [m["content"] for m in messages] == ["Name a fruit instead", "w0 w1 w2 "]
    assert messages[0]["versions"] == [first["user"], edited["user"]]
    assert messages[0]["parent"] is None
    # The earlier version and what followed it are still there, one request away.
    old = shown(api, first["conversation"], branch=first["user"])
    assert [m["id"] for m in old] == [first["user"], first["reply"], second["user"], second["reply"]]


def test_a_regenerated_reply_anywhere_becomes_a_version_of_it(user: Any, api: Client) -> None:
    first = say(user, "One")
    conversation = uuid.UUID(first["conversation"])
    say(user, "Two", conversation)
    again = say(user, "", conversation, regenerate=True, regenerated=uuid.UUID(first["reply"]))

    assert sent() == [("user", "One")]
    assert again["user"] == first["user"]
    messages = shown(api, first["conversation"])  # the newest branch: the regenerated reply's
    assert [m["id"] for m in messages] == [first["user"], again["reply"]]
    assert messages[1]["versions"] == [first["reply"], again["reply"]]


def test_a_message_after_an_earlier_branch_sees_only_that_branch(user: Any, api: Client) -> None:
    first = say(user, "Start")
    conversation = uuid.UUID(first["conversation"])
    old_branch = say(user, "Old follow-up", conversation)
    say(user, "Start over", conversation, edit=uuid.UUID(first["user"]))
    say(user, "Back on the old branch", conversation, parent=uuid.UUID(old_branch["reply"]))

    assert sent() == [
        ("user", "Start"),
        ("assistant", "w0 w1 w2 "),
        ("user", "Old follow-up"),
        ("assistant", "w0 w1 w2 "),
        ("user", "Back on the old branch"),
    ]
    assert [m["content"] for m in shown(api, first["conversation"])][-2:] == [
        "Back on the old branch",
        "w0 w1 w2 ",
    ]


def test_a_continued_reply_in_a_branch_sees_that_branch(user: Any, api: Client) -> None:
    first = say(user, "Count")
    conversation = uuid.UUID(first["conversation"])
    say(user, "Elsewhere", conversation)
    edited = say(user, "Count to three", conversation, edit=uuid.UUID(first["user"]))
    Message.objects.filter(pk=edited["reply"]).update(status="cancelled")
    reply = start_reply(user, ChatInput(None, "", None, continued=uuid.UUID(edited["reply"])))
    replies.chunks(reply)
    assert [content for _role, content in sent()][:2] == ["Count to three", "w0 w1 w2 "]
    assert reply.user_message_id == edited["user"]


def test_history_limit_counts_along_the_branch(user: Any, settings: Any) -> None:
    settings.STREAMING = {**settings.STREAMING, "HISTORY_MESSAGES": 3}
    first = say(user, "a")
    conversation = uuid.UUID(first["conversation"])
    b = say(user, "b", conversation)
    say(user, "c", conversation, edit=uuid.UUID(b["user"]))
    say(user, "d", conversation)
    assert sent() == [("assistant", "w0 w1 w2 "), ("user", "c"), ("assistant", "w0 w1 w2 "), ("user", "d")]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"edit": "reply"}, 404, "edit"),  # only a user message is edited
        ({"parent": str(uuid.uuid4())}, 404, "parent"),
        ({"regenerate": str(uuid.uuid4())}, 404, "regenerate"),
        ({"edit": "user", "parent": "reply"}, 400, "edit"),
        ({"regenerate": 3}, 400, "regenerate"),
        ({"parent": "not a uuid"}, 400, "parent"),
    ],
)
def test_places_that_do_not_exist_are_refused(
    user: Any, api: Client, body: dict[str, Any], status: int, field: str
) -> None:
    ids = say(user, "Hello")
    named = {key: ids.get(value, value) if isinstance(value, str) else value for key, value in body.items()}
    payload = {"conversation": ids["conversation"], "message": "x", "model": "scripted:model-a", **named}
    response = api.post("/api/chat", payload, content_type="application/json")
    assert response.status_code == status, response.content
    assert response.json()["error"]["field"] == field


def test_another_conversations_message_is_not_a_place(user: Any, api: Client) -> None:
    mine = say(user, "Mine")
    other = say(user, "Other")
    body = {"conversation": mine["conversation"], "message": "x", "parent": other["reply"]}
    assert api.post("/api/chat", body, content_type="application/json").status_code == 404


def test_an_unknown_branch_shows_the_newest(user: Any, api: Client) -> None:
    ids = say(user, "Hello")
    assert [m["id"] for m in shown(api, ids["conversation"], branch=str(uuid.uuid4()))][-1] == ids["reply"]
    bad = api.get(f"/api/conversations/{ids['conversation']}?branch=nope")
    assert (bad.status_code, bad.json()["error"]["field"]) == (400, "branch")


def test_a_reply_in_a_long_branching_conversation_costs_the_same_queries(user: Any) -> None:
    """Its history is one recursive query however long the path and however many branches."""
    kinds = []
    for turns in (1, 12):
        ids = say(user, "start")
        conversation = uuid.UUID(ids["conversation"])
        for turn in range(turns):
            ids = say(user, f"turn {turn}", conversation)
            say(user, f"turn {turn} again", conversation, edit=uuid.UUID(ids["user"]))
        ScriptedProvider.enqueue(text_reply(3))
        with all_queries() as queries:
            run = partial(start_reply, user, ChatInput(conversation, "last", "scripted:model-a"))
            replies.chunks(database.run(run))
        kinds.append(queries.work().kinds())
    assert kinds[0] == kinds[1]
    # Start: the conversation locked, its replies of dead processes and then any streaming reply
    # looked for, the path (WITH RECURSIVE), the budget read, both messages in one INSERT, the
    # conversation's model and time. Save: the price, the reply, its usage row, the conversation's time.
    assert kinds[0] == {"SELECT": 5, "WITH": 1, "INSERT": 2, "UPDATE": 3}, kinds


def test_the_migration_links_existing_messages_in_order(user: Any) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([("streaming", "0005_budget_reservation")])
    try:
        old_apps = executor.loader.project_state(("streaming", "0005_budget_reservation")).apps
        old_conversation = old_apps.get_model("streaming", "Conversation")
        old_message = old_apps.get_model("streaming", "Message")
        ids = []
        for title in ("one", "two"):
            conversation = old_conversation.objects.create(owner_id=user.pk, title=title, model="demo:echo")
            now = timezone.now()
            for n in range(3):
                message = old_message.objects.create(
                    conversation=conversation, role="user" if n % 2 == 0 else "assistant",
                    content=f"{title} {n}", created_at=now + timedelta(seconds=n),
                )  # fmt: skip
                ids.append(message.pk)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes("streaming"))
    parents = dict(Message.objects.values_list("pk", "parent_id"))
    assert [parents[pk] for pk in ids] == [None, ids[0], ids[1], None, ids[3], ids[4]]
    assert Conversation.objects.count() == 2
