"""The conversation list a page at a time (a cursor, newest first, no conversation twice or lost), and a
search over titles and message text that says what matched."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from streaming.models import Conversation, Message
from tests.queries import all_queries

pytestmark = pytest.mark.django_db(transaction=True)


def make(owner: Any, count: int, title: str = "Chat {n}") -> list[Conversation]:
    now = timezone.now()
    made = []
    for n in range(count):
        made.append(
            Conversation.objects.create(
                owner=owner, model="demo:echo", title=title.format(n=n), updated_at=now - timedelta(minutes=n)
            )
        )
    return made


def page(api: Client, **params: Any) -> dict[str, Any]:
    response = api.get("/api/conversations", params)
    assert response.status_code == 200, response.content
    return dict(response.json())


def test_pages_follow_each_other_without_gaps_or_repeats(api: Client, user: Any, other_user: Any) -> None:
    made = make(user, 125)
    make(other_user, 3, "Not mine {n}")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        data = page(api, **({"cursor": cursor} if cursor else {}))
        pages += 1
        seen += [c["id"] for c in data["conversations"]]
        cursor = data["next"]
        if cursor is None:
            break
    assert pages == 3  # 50, 50, 25
    assert seen == [str(c.pk) for c in made]


def test_a_conversation_that_moves_to_the_top_shifts_no_page(api: Client, user: Any) -> None:
    made = make(user, 6)
    first = page(api, limit=3)
    Conversation.objects.filter(pk=made[5].pk).update(updated_at=timezone.now() + timedelta(minutes=1))
    second = page(api, limit=3, cursor=first["next"])
    assert [c["title"] for c in second["conversations"]] == ["Chat 3", "Chat 4"]


def test_same_time_is_ordered_by_id(api: Client, user: Any) -> None:
    now = timezone.now()
    made = [Conversation.objects.create(owner=user, model="m", updated_at=now) for _ in range(5)]
    ids = []
    cursor = None
    for _ in range(5):
        data = page(api, limit=2, **({"cursor": cursor} if cursor else {}))
        ids += [c["id"] for c in data["conversations"]]
        cursor = data["next"]
        if not cursor:
            break
    assert sorted(ids) == sorted(str(c.pk) for c in made) and len(ids) == 5


def test_search_finds_titles_and_text_and_says_where(api: Client, user: Any, other_user: Any) -> None:
    by_title, by_text, neither = make(user, 3, "{n}")
    Conversation.objects.filter(pk=by_title.pk).update(title="Rollback plan")
    long_text = "How do I plan a ROLLBACK of " + "x " * 80
    Message.objects.create(conversation=by_text, role="user", content=long_text)
    Message.objects.create(conversation=neither, role="user", content="Nothing here")
    Message.objects.create(conversation=by_title, role="user", content="The rollback, step by step")
    theirs = make(other_user, 1, "rollback of someone else")[0]
    Message.objects.create(conversation=theirs, role="user", content="rollback")

    found = page(api, q="  rollback ")["conversations"]
    assert [c["id"] for c in found] == [str(by_title.pk), str(by_text.pk)]
    assert found[0]["match"] is None  # the title says it (and so does its text)
    assert found[1]["match"].startswith("How do I plan a ROLLBACK of x")
    assert found[1]["match"].endswith("…") and len(found[1]["match"]) < 130
    assert page(api, q="100% not there")["conversations"] == []


def test_a_page_is_one_query_however_deep(api: Client, user: Any) -> None:
    make(user, 30)
    with all_queries() as first:
        data = page(api, limit=10)
    third = page(api, limit=10, cursor=data["next"])["next"]
    with all_queries() as deeper:
        page(api, limit=10, cursor=third, q="Chat")
    assert first.work().kinds() == {"SELECT": 3}  # (the session, its user, the page)
    assert deeper.work().kinds() == {"SELECT": 3}  # (a search too: its match is part of the page's)


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"limit": "x"}, "limit"),
     ({"cursor": "nope"}, "cursor"), ({"cursor": "bWVo"}, "cursor"), ({"q": "x" * 201}, "q"),
     ({"q": "a\x00b"}, "q")],
)  # fmt: skip
def test_bad_parameters_are_400_with_their_field(api: Client, params: dict[str, str], field: str) -> None:
    response = api.get("/api/conversations", params)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
