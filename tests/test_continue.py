"""``POST /api/chat`` with ``{"continue": "<reply id>"}`` asks the model to go on with a reply that was cut
short (stopped, failed, interrupted): the new text goes on the same message, the provider call gets a
usage row of its own, and the reply's cost is their sum. Through each vendor's real SDK against the fake
upstream, on the sync and the async path: the request carries the text so far and asks to go on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from streaming.models import Conversation, Message
from streaming.models import Usage as UsageRow
from streaming.services import CONTINUE_PROMPT
from tests.fake_upstream import VENDORS, FakeUpstream, Reply
from tests.real_providers import BY_NAME, MODEL, configure, post, use_key
from tests.sse import parse_events, text_of

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-test-1234567890"


@pytest.fixture
def upstreams(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, FakeUpstream]]:
    use_key(monkeypatch, KEY)
    with ExitStack() as stack:
        yield {vendor.name: stack.enter_context(FakeUpstream()) for vendor in VENDORS}


def cut_short(user: Any, model: str, status: str = "cancelled") -> Message:
    conversation = Conversation.objects.create(owner=user, model=model, title="Cut")
    Message.objects.create(conversation=conversation, role="user", content="Count to six.")
    return Message.objects.create(
        conversation=conversation, role="assistant", content="One, two, three,", status=status, model=model
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("vendor", [v.name for v in VENDORS])
def test_a_reply_cut_short_goes_on_in_the_same_message(
    upstreams: dict[str, FakeUpstream], settings: Any, api: Client, user: Any, vendor: str, mode: str
) -> None:
    configure(settings, upstreams)
    reply = cut_short(user, MODEL[vendor])
    upstreams[vendor].enqueue(Reply.stream(BY_NAME[vendor].complete(" four, five, six.")))

    events = parse_events(post(mode, api, user, {"continue": str(reply.pk)}))

    assert events[0]["messageId"] == str(reply.pk)  # the same message, not a new one
    assert text_of(events) == " four, five, six."  # the stream has only what is new
    continues = events[0]["messageMetadata"]["continues"]  # after this much of the stored message
    assert continues == {"textLength": len("One, two, three,"), "reasoningLength": 0}
    assert events[-2]["messageMetadata"]["status"] == "complete"
    sent = upstreams[vendor].last.body.decode()
    assert "One, two, three," in sent and CONTINUE_PROMPT in sent and "Count to six." in sent
    reply.refresh_from_db()
    assert (reply.status, reply.content) == ("complete", "One, two, three, four, five, six.")
    assert reply.error_code == ""


def test_the_cost_of_a_continued_reply_is_the_sum_of_its_calls(api: Client, user: Any) -> None:
    reply = cut_short(user, "demo:echo", status="interrupted")
    UsageRow.objects.create(
        user=user, conversation=reply.conversation, message=reply, provider="demo", model="echo",
        input_tokens=3, output_tokens=4, estimated=True, total_cost=Decimal("0.25"),
    )  # fmt: skip
    response = api.post("/api/chat", {"continue": str(reply.pk)}, content_type="application/json")
    events = parse_events(b"".join(response.streaming_content))  # type: ignore[attr-defined]
    assert events[-2]["messageMetadata"]["status"] == "complete"
    rows = UsageRow.objects.filter(message=reply)
    assert rows.count() == 2
    detail = api.get(f"/api/conversations/{reply.conversation_id}").json()
    stored = detail["messages"][-1]
    assert stored["usage"]["output_tokens"] == sum(r.output_tokens for r in rows)
    assert Decimal(stored["cost"]) == sum((r.total_cost or Decimal(0) for r in rows), Decimal(0))
    assert Decimal(detail["cost"]) == Decimal(stored["cost"])


@pytest.mark.parametrize("status", ["complete", "streaming"])
def test_only_a_reply_cut_short_can_be_continued(api: Client, user: Any, status: str) -> None:
    reply = cut_short(user, "demo:echo", status=status)
    response = api.post("/api/chat", {"continue": str(reply.pk)}, content_type="application/json")
    assert response.status_code == 409
    expected = "not_continuable" if status == "complete" else "reply_in_progress"
    assert response.json()["error"]["code"] == expected


def test_another_users_reply_cannot_be_continued(api: Client, other_user: Any) -> None:
    reply = cut_short(other_user, "demo:echo")
    response = api.post("/api/chat", {"continue": str(reply.pk)}, content_type="application/json")
    assert (response.status_code, response.json()["error"]["field"]) == (404, "continue")


def test_where_a_continuation_starts_is_counted_as_a_browser_counts(api: Client, user: Any) -> None:
    """In UTF-16 code units: an emoji is two of them, as JavaScript's ``length`` says."""
    reply = cut_short(user, "demo:echo")
    Message.objects.filter(pk=reply.pk).update(content="Hi 🎉", reasoning="é")
    response = api.post("/api/chat", {"continue": str(reply.pk)}, content_type="application/json")
    events = parse_events(b"".join(response.streaming_content))  # type: ignore[attr-defined]
    assert events[0]["messageMetadata"]["continues"] == {"textLength": 5, "reasoningLength": 1}
