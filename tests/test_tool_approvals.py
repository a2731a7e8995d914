"""Tools and the user: a call marked ``needs_approval`` waits for the user's answer (the reply ends
awaiting it; ``POST /api/messages/<id>/approvals`` or the AI SDK's next request answers, and the reply
goes on in the same message), a tool acts as the requesting user only, the next turn's context has the
earlier turns' tool calls and results, and the demo project's tools work offline with the demo model."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from streaming.models import Conversation, Message
from streaming.parts import DENIED
from streaming.providers.scripted import ScriptedProvider
from streaming.services import UNANSWERED
from tests import example_tools
from tests.sse import parse_events, text_of
from tests.test_tools import answer, calls, of_type, offer, sent_results

pytestmark = pytest.mark.django_db(transaction=True)


def chat(api: Client, body: dict[str, Any], url: str = "/api/chat") -> list[dict[str, Any]]:
    response: Any = api.post(url, body, content_type="application/json")
    assert response.status_code == 200, response.content
    return [e for e in parse_events(b"".join(response.streaming_content)) if isinstance(e, dict)]


def ask_to_send(api: Client, settings: Any) -> list[dict[str, Any]]:
    offer(settings, "send_email", "add")
    example_tools.sent.clear()
    email = {"to": "ada@example.com", "subject": "Hello"}
    ScriptedProvider.enqueue(
        calls(("c1", "send_email", email), ("c2", "add", {"a": 1, "b": 2}), text="Sending.")
    )
    return chat(api, {"message": "Mail Ada", "model": "scripted:model-a"})


def test_a_call_that_needs_approval_waits_for_it(api: Client, settings: Any) -> None:
    first = ask_to_send(api, settings)

    # The call that needs no approval ran; the other one waits, and the reply ends until the answer.
    assert of_type(first, "tool-approval-request") == [
        {"type": "tool-approval-request", "approvalId": "approval_c1", "toolCallId": "c1"}
    ]
    assert [c["output"] for c in of_type(first, "tool-output-available")] == [3]
    assert (first[-1]["finishReason"], first[-1]["messageMetadata"]["status"]) == (
        "tool-calls",
        "awaiting_approval",
    )
    assert example_tools.sent == []
    message = Message.objects.get(role="assistant")
    assert message.status == "awaiting_approval"
    assert len(ScriptedProvider.calls) == 1

    ScriptedProvider.enqueue(answer("Sent it."))
    answer_url = f"/api/messages/{message.pk}/approvals"
    then = chat(api, {"approvals": [{"id": "approval_c1", "approved": True}]}, answer_url)

    assert then[0] == {**first[0], "messageMetadata": then[0]["messageMetadata"]}  # the same message
    assert [c["type"] for c in then[1:3]] == ["tool-output-available", "start-step"]
    assert then[1]["output"] == "sent to ada@example.com"
    assert example_tools.sent == [("ada@example.com", "Hello")]
    assert text_of(then) == "Sent it."
    assert sent_results(1) == [("send_email", "sent to ada@example.com", None), ("add", 3, None)]
    message.refresh_from_db()
    assert message.status == "complete" and message.content == "Sending.\n\nSent it."
    email_part = next(p for p in message.parts if p["type"] == "tool-send_email")
    assert (email_part["state"], email_part["approval"]) == (
        "output-available",
        {"id": "approval_c1", "approved": True},
    )


def test_a_denied_call_goes_back_to_the_model_as_denied(api: Client, settings: Any) -> None:
    ask_to_send(api, settings)
    message = Message.objects.get(role="assistant")
    ScriptedProvider.enqueue(answer("I did not send it."))
    body = {"approvals": [{"id": "approval_c1", "approved": False, "reason": "Not now."}]}
    then = chat(api, body, f"/api/messages/{message.pk}/approvals")
    assert of_type(then, "tool-output-denied") == [{"type": "tool-output-denied", "toolCallId": "c1"}]
    assert example_tools.sent == []
    assert sent_results(1)[0] == ("send_email", None, f"{DENIED} Not now.")
    message.refresh_from_db()
    assert next(p for p in message.parts if p["type"] == "tool-send_email")["state"] == "output-denied"


def test_answers_come_one_at_a_time(api: Client, settings: Any) -> None:
    offer(settings, "send_email")
    ScriptedProvider.enqueue(
        calls(
            ("c1", "send_email", {"to": "a@example.com", "subject": "1"}),
            ("c2", "send_email", {"to": "b@example.com", "subject": "2"}),
        )
    )
    chat(api, {"message": "Mail both", "model": "scripted:model-a"})
    url = f"/api/messages/{Message.objects.get(role='assistant').pk}/approvals"

    response = api.post(url, {"approvals": [{"id": "approval_c2", "approved": True}]}, "application/json")
    assert (response.status_code, response.json()["pending"]) == (202, ["approval_c1"])
    ScriptedProvider.enqueue(answer("One sent."))
    then = chat(api, {"approvals": [{"id": "approval_c1", "approved": False}]}, url)
    assert [c["type"] for c in then[1:3]] == ["tool-output-denied", "tool-output-available"]

    again = api.post(url, {"approvals": [{"id": "approval_c1", "approved": True}]}, "application/json")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_awaiting_approval")
    unknown = api.post(url, {"approvals": [{"id": "nope", "approved": True}]}, "application/json")
    assert unknown.status_code == 409


def test_another_users_reply_cannot_be_approved(api: Client, settings: Any, other_user: Any) -> None:
    ask_to_send(api, settings)
    message = Message.objects.get(role="assistant")
    other = Client()
    other.force_login(other_user)
    response = other.post(
        f"/api/messages/{message.pk}/approvals",
        {"approvals": [{"id": "approval_c1", "approved": True}]},
        "application/json",
    )
    assert response.status_code == 404
    assert example_tools.sent == []


def test_the_ai_sdks_approval_response_goes_on_with_the_reply(api: Client, settings: Any) -> None:
    first = ask_to_send(api, settings)
    conversation = Conversation.objects.get()
    # What useChat sends after addToolApprovalResponse: the assistant message, its part answered.
    assistant = {
        "id": first[0]["messageId"],
        "role": "assistant",
        "parts": [
            {"type": "step-start"},
            {"type": "text", "text": "Sending."},
            {
                "type": "tool-send_email",
                "toolCallId": "c1",
                "state": "approval-responded",
                "input": {"to": "ada@example.com", "subject": "Hello"},
                "approval": {"id": "approval_c1", "approved": True},
            },
        ],
    }
    user_message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Mail Ada"}]}
    ScriptedProvider.enqueue(answer("Sent."))
    body = {
        "id": str(conversation.pk),
        "messages": [user_message, assistant],
        "trigger": "submit-message",
        "messageId": assistant["id"],
    }
    then = chat(api, body)
    assert then[0]["messageId"] == first[0]["messageId"]
    assert then[1]["type"] == "tool-output-available"
    assert example_tools.sent == [("ada@example.com", "Hello")]
    assert Message.objects.filter(role="user").count() == 1  # no new question


def test_a_new_message_closes_the_approvals_nobody_answered(api: Client, settings: Any) -> None:
    ask_to_send(api, settings)
    conversation = Conversation.objects.get()
    ScriptedProvider.enqueue(answer("Something else, then."))
    chat(api, {"conversation": str(conversation.pk), "message": "Never mind", "model": "scripted:model-a"})
    waited = Message.objects.filter(role="assistant").order_by("created_at").first()
    assert waited is not None and waited.status == "complete"
    part = next(p for p in waited.parts if p["type"] == "tool-send_email")
    assert (part["state"], part["approval"]["reason"]) == ("output-denied", UNANSWERED)
    # The new turn's context has the earlier calls and what became of them.
    assert sent_results(1) == [("send_email", None, f"{DENIED} {UNANSWERED}"), ("add", 3, None)]
    assert example_tools.sent == []


def test_the_next_turn_has_the_tool_calls_and_results(api: Client, settings: Any) -> None:
    offer(settings, "add")
    ScriptedProvider.enqueue(calls(("c1", "add", {"a": 20, "b": 22}), text="Adding."))
    ScriptedProvider.enqueue(answer("42."))
    first = chat(api, {"message": "20 + 22?", "model": "scripted:model-a"})
    ScriptedProvider.enqueue(answer("Yes."))
    chat(api, {"conversation": first[0]["messageMetadata"]["conversationId"], "message": "Sure?"})
    messages = ScriptedProvider.calls[2].request.messages
    assert [(m.role, m.content) for m in messages] == [
        ("user", "20 + 22?"),
        ("assistant", "Adding."),
        ("tool", ""),
        ("assistant", "42."),
        ("user", "Sure?"),
    ]
    assert [(c.name, c.input) for c in messages[1].tool_calls] == [("add", {"a": 20, "b": 22})]
    assert [(r.name, r.output) for r in messages[2].tool_results] == [("add", 42)]


def test_a_model_offered_no_tools_hears_of_earlier_calls_in_words(api: Client, settings: Any) -> None:
    offer(settings, "add")
    ScriptedProvider.enqueue(calls(("c1", "add", {"a": 1, "b": 1})))
    ScriptedProvider.enqueue(answer("2."))
    first = chat(api, {"message": "1 + 1?", "model": "scripted:model-a"})
    settings.STREAMING = {**settings.STREAMING, "TOOLS": {"scripted:model-a": ["tests.example_tools.add"]}}
    chat(
        api,
        {
            "conversation": first[0]["messageMetadata"]["conversationId"],
            "message": "Thanks",
            "model": "backup:model-b",
        },
    )
    messages = ScriptedProvider.calls[2].request.messages
    assert not any(m.tool_calls or m.tool_results for m in messages)  # (no vendor takes them without tools)
    assert messages[1].content == '[I called the tool add with {"a":1,"b":1}.]\n\n[add answered: 2]\n\n2.'


def test_a_tool_sees_only_the_requesting_users_data(
    api: Client, settings: Any, user: Any, other_user: Any
) -> None:
    Conversation.objects.create(owner=user, title="Alice's plans", model="scripted:model-a")
    Conversation.objects.create(owner=other_user, title="Bob's secrets", model="scripted:model-a")
    offer(settings, "my_titles")
    ScriptedProvider.enqueue(calls(("c1", "my_titles", {})))
    ScriptedProvider.enqueue(answer("Those are yours."))
    # The model tries to ask for another user's data: the tool has no such parameter.
    ScriptedProvider.enqueue(calls(("c2", "my_titles", {"user": "bob"})))
    ScriptedProvider.enqueue(answer("I cannot."))

    chunks = chat(api, {"message": "My conversations?", "model": "scripted:model-a"})
    titles = of_type(chunks, "tool-output-available")[0]["output"]
    assert titles == ["Alice's plans", "My conversations?"]
    assert "Bob" not in json.dumps(chunks)

    again = chat(api, {"message": "And Bob's?", "model": "scripted:model-a"})
    assert (
        of_type(again, "tool-output-error")[0]["errorText"]
        == "Invalid input for my_titles: user: Unexpected keyword argument."
    )


def test_the_demo_model_calls_the_demo_projects_tools(
    api: Client, settings: Any, user: Any, other_user: Any
) -> None:
    settings.STREAMING = {
        **settings.STREAMING,
        "TOOLS": ["project.tools.current_time", "project.tools.search_conversations"],
    }
    Conversation.objects.create(owner=other_user, title="Holiday plans of Bob", model="demo:echo")
    mine = Conversation.objects.create(owner=user, title="Holiday plans", model="demo:echo")

    timed = chat(api, {"message": "What time is it?", "model": "demo:echo"})
    [time_call] = of_type(timed, "tool-output-available")
    assert of_type(timed, "tool-input-available")[0]["toolName"] == "current_time"
    assert str(time_call["output"])[:4].isdigit()  # an ISO date
    assert "current_time" in text_of(timed)

    found = chat(api, {"message": "Search for holiday", "model": "demo:echo"})
    assert of_type(found, "tool-input-available")[0]["input"] == {"query": "holiday"}
    results = of_type(found, "tool-output-available")[0]["output"]
    # The user's own conversations (this one too, whose message has the word), never Bob's.
    assert [r["title"] for r in results] == ["Search for holiday", "Holiday plans"]
    assert results[1]["id"] == str(mine.pk)
