"""A conversation exported as a download: Markdown of the branch shown, JSON of every branch."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from streaming.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def conversation(user: Any) -> Conversation:
    conversation = Conversation.objects.create(owner=user, model="demo:echo", title="Rollback: a plan!")
    question = Message.objects.create(conversation=conversation, role="user", content="How do I roll back?")
    Message.objects.create(
        conversation=conversation, role="assistant", model="demo:echo", content="Like **this**.",
        reasoning="Think first.",
    )  # fmt: skip
    Message.objects.create(
        conversation=conversation, role="assistant", model="demo:echo", content="Or", parent=question,
        status="error", error_code="overloaded", error_text="The model provider is overloaded.",
    )  # fmt: skip
    return conversation


def test_markdown_of_the_branch_shown(api: Client, conversation: Conversation) -> None:
    response = api.get(f"/api/conversations/{conversation.pk}/export?format=md")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="rollback-a-plan.md"'
    text = response.content.decode()
    assert text.startswith("# Rollback: a plan!\n\n*Exported ")
    assert "## You\n\nHow do I roll back?" in text
    assert "## Assistant (demo:echo)\n\nOr\n\n*Error: The model provider is overloaded.*" in text
    assert "Like **this**." not in text  # the earlier version is another branch


def test_markdown_of_another_branch(api: Client, conversation: Conversation) -> None:
    first = conversation.messages.get(content="Like **this**.")
    url = f"/api/conversations/{conversation.pk}/export?format=md&branch={first.pk}"
    text = api.get(url).content.decode()
    assert "<details><summary>Reasoning</summary>\n\nThink first.\n\n</details>\n\nLike **this**." in text
    assert "overloaded" not in text


def test_json_of_every_branch(api: Client, conversation: Conversation) -> None:
    response = api.get(f"/api/conversations/{conversation.pk}/export?format=json")
    assert response["Content-Disposition"] == 'attachment; filename="rollback-a-plan.json"'
    data = json.loads(response.content)
    assert data["title"] == "Rollback: a plan!"
    assert [m["content"] for m in data["messages"]] == ["How do I roll back?", "Like **this**.", "Or"]
    question = data["messages"][0]["id"]
    assert [m["parent"] for m in data["messages"]] == [None, question, question]
    assert data["branch"] == [question, data["messages"][2]["id"]]


def test_a_bad_format_or_someone_elses_is_refused(
    api: Client, conversation: Conversation, other_user: Any
) -> None:
    bad = api.get(f"/api/conversations/{conversation.pk}/export?format=pdf")
    assert (bad.status_code, bad.json()["error"]["field"]) == (400, "format")
    theirs = Conversation.objects.create(owner=other_user, model="demo:echo", title="Theirs")
    assert api.get(f"/api/conversations/{theirs.pk}/export").status_code == 404
    assert api.get("/api/conversations/%00/export").status_code == 404  # (a NUL: PostgreSQL too)
