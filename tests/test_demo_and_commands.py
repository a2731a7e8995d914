"""The offline demo provider and the management commands."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from streaming.events import Finish, ReasoningDelta, TextDelta, Usage
from streaming.models import Conversation, Message
from streaming.providers.base import ChatMessage, ChatRequest
from streaming.providers.demo import DemoProvider


def demo_events(reasoning: bool = False, **options: Any) -> list[Any]:
    provider = DemoProvider("demo", {"tokens_per_second": 0, **options})
    request = ChatRequest("echo", [ChatMessage("user", "Tell me   about streams")], reasoning=reasoning)
    return list(provider.stream(request))


def test_demo_reply_is_deterministic_markdown_with_the_users_words() -> None:
    events = demo_events()
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "".join(e.text for e in demo_events() if isinstance(e, TextDelta))
    assert 'You said: "Tell me about streams"' in text
    assert "\n\n- " in text  # a list
    assert "```python\n" in text  # a fenced code block
    assert text.count("\n\n") >= 4  # paragraphs
    words = [e for e in events if isinstance(e, TextDelta)]
    assert len(words) > 40 and all(len(w.text.split()) == 1 for w in words)  # a word at a time
    usage, finish = events[-2], events[-1]
    assert usage == Usage(input_tokens=6, output_tokens=len(words))
    assert finish == Finish("stop")


def test_demo_streams_reasoning_first_when_asked() -> None:
    events = demo_events(reasoning=True)
    kinds = [type(e) for e in events]
    first_text = kinds.index(TextDelta)
    assert kinds[0] is ReasoningDelta and ReasoningDelta not in kinds[first_text:]
    usage = events[-2]
    assert usage.reasoning_tokens == first_text
    assert usage.output_tokens == len(events) - 2


def test_demo_pads_long_replies_and_streams_async() -> None:
    provider = DemoProvider("demo", {"tokens_per_second": 0, "min_reply_tokens": 500})
    request = ChatRequest("echo", [ChatMessage("user", "long")])

    async def collect() -> list[Any]:
        return [event async for event in provider.astream(request)]

    events = asyncio.run(collect())
    assert sum(isinstance(e, TextDelta) for e in events) >= 500
    assert events[-2].output_tokens >= 500


def test_demo_rate_is_configurable() -> None:
    started = time.monotonic()
    events = demo_events(tokens_per_second=2000)
    elapsed = time.monotonic() - started
    assert elapsed >= (len(events) - 2) / 2000


@pytest.mark.django_db
def test_demo_command_creates_the_user_once_and_prints_the_password_once() -> None:
    out = StringIO()
    call_command("demo", "--no-serve", stdout=out)
    printed = out.getvalue()
    assert "password: " in printed
    assert "superuser 'demo'" in printed  # what it makes: staff, with every permission
    password = printed.split("password: ")[1].split()[0]
    user = get_user_model().objects.get(username="demo")
    assert user.is_staff and user.is_superuser and user.check_password(password)

    again = StringIO()
    call_command("demo", "--no-serve", stdout=again)
    assert "password: " not in again.getvalue()
    assert "python manage.py changepassword demo" in again.getvalue()  # how to get in without the password
    assert get_user_model().objects.filter(username="demo").count() == 1


@pytest.mark.django_db(transaction=True)
def test_chat_command_streams_and_stores_a_reply(user: Any) -> None:
    out = StringIO()
    call_command("chat", "Hello from the terminal", "--model", "demo:echo", "--user", "alice", stdout=out)
    printed = out.getvalue()
    assert 'You said: "Hello from the terminal"' in printed
    assert "[complete]" in printed
    conversation = Conversation.objects.get(owner=user)
    assert str(conversation.id) in printed
    assert conversation.messages.get(role="assistant").status == "complete"


@pytest.mark.django_db
def test_chat_command_errors_are_clear(user: Any) -> None:
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("chat", "Hi", "--user", "nobody")
    with pytest.raises(CommandError, match="Unknown model"):
        call_command("chat", "Hi", "--user", "alice", "--model", "demo:nope")


@pytest.mark.django_db
def test_mark_interrupted_command(user: Any) -> None:
    conversation = Conversation.objects.create(owner=user, model="demo:echo")
    old = timezone.now() - timedelta(minutes=5)
    stale = Message.objects.create(
        conversation=conversation, role="assistant", status="streaming", updated_at=old
    )
    live = Message.objects.create(conversation=conversation, role="assistant", status="streaming")
    out = StringIO()
    call_command("mark_interrupted", "--older-than", "60", stdout=out)
    assert out.getvalue().strip() == "Marked 1 stale reply as interrupted."
    stale.refresh_from_db()
    live.refresh_from_db()
    assert (stale.status, stale.error_code, live.status) == ("interrupted", "interrupted", "streaming")


@pytest.mark.django_db
def test_stopping_a_reply_whose_process_died_says_so(api: Any, user: Any) -> None:
    conversation = Conversation.objects.create(owner=user, model="demo:echo")
    old = timezone.now() - timedelta(minutes=5)
    dead = Message.objects.create(
        conversation=conversation, role="assistant", status="streaming", updated_at=old
    )
    response = api.post(f"/api/messages/{dead.id}/stop")
    assert response.status_code == 409
    assert response.json()["error"]["message"] == "This reply is already interrupted."
