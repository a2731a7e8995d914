"""The HTTP API: every bad input gets its JSON error and status, never a 500."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client

from streaming.events import Finish, TextDelta
from streaming.models import Conversation, Message
from streaming.providers.scripted import Pause, ScriptedProvider
from tests.sse import parse_events

pytestmark = pytest.mark.django_db(transaction=True)


def chat(client: Client, body: Any, **extra: Any) -> Any:
    data = body if isinstance(body, (bytes, str)) else __import__("json").dumps(body)
    return client.post("/api/chat", data, content_type="application/json", **extra)


def error_of(response: Any) -> dict[str, Any]:
    assert response["Content-Type"] == "application/json"
    return response.json()["error"]


def test_models_lists_the_allowlist(api: Client) -> None:
    data = api.get("/api/models").json()
    assert data["default"] == "scripted:model-a"
    assert data["models"][1] == {
        "id": "scripted:thinker",
        "provider": "scripted",
        "model": "thinker",
        "label": "Thinker",
        "reasoning": True,
    }
    assert data["history_messages"] == 40  # how many stored messages a reply's context takes


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/models", "get"),
        ("/api/conversations", "get"),
        (f"/api/conversations/{uuid.uuid4()}", "get"),
        ("/api/chat", "post"),
        (f"/api/messages/{uuid.uuid4()}/stop", "post"),
    ],
)
def test_not_logged_in_is_401_json_not_a_redirect(path: str, method: str) -> None:
    response = getattr(Client(), method)(path)
    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"


def test_chat_page_redirects_to_login() -> None:
    assert Client().get("/").status_code == 302


def test_missing_csrf_header_is_403_json(user: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = chat(client, {"message": "Hi"})
    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"
    assert Message.objects.count() == 0


def test_wrong_method_is_405(api: Client) -> None:
    response = api.get("/api/chat")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert error_of(response)["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        ({"model": "scripted:model-a"}, "message"),
        ({"message": 42}, "message"),
        ({"message": "   "}, "message"),
        ({"message": "Hi", "model": 7}, "model"),
        ({"message": "Hi", "model": "openai:gpt-5-ultra"}, "model"),
        ({"message": "Hi", "model": "no-colon"}, "model"),
        ({"message": "Hi", "reasoning": "yes"}, "reasoning"),
        ({"message": "Hi", "conversation": "x" * 101}, "conversation"),
        ({"message": "Hi", "conversation": "tab\tin-it"}, "conversation"),
        ({"message": "Hi", "conversation": ""}, "conversation"),
        ({"message": "Hi\u0000there"}, "message"),
        ({"message": "Hi", "conversation": 12}, "conversation"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "assistant", "parts": []}]}, "messages"),
        ({"messages": [{"role": "user"}]}, "messages"),
        ({"messages": [], "trigger": "explode"}, "trigger"),
    ],
)
def test_bad_chat_bodies_are_400_with_the_field(api: Client, body: Any, field: str | None) -> None:
    response = chat(api, body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert error.get("field") == field
    assert error["message"]
    assert Message.objects.count() == 0


def test_oversized_message_is_413(api: Client, settings: Any) -> None:
    settings.STREAMING = {**settings.STREAMING, "MAX_MESSAGE_CHARS": 100}
    response = chat(api, {"message": "x" * 101})
    assert response.status_code == 413
    assert error_of(response) == {
        "code": "message_too_long",
        "message": "The message has 101 characters; the limit is 100.",
        "field": "message",
    }


def test_another_users_conversation_is_404(api: Client, other_user: Any) -> None:
    theirs = Conversation.objects.create(owner=other_user, model="scripted:model-a", title="Private")
    assert chat(api, {"message": "Hi", "conversation": str(theirs.id)}).status_code == 404
    assert api.get(f"/api/conversations/{theirs.id}").status_code == 404
    assert api.patch(f"/api/conversations/{theirs.id}", {"title": "x"}, "application/json").status_code == 404
    assert api.delete(f"/api/conversations/{theirs.id}").status_code == 404
    assert Conversation.objects.get(pk=theirs.pk).title == "Private"
    assert api.get("/api/conversations/not-a-uuid").status_code == 404


def test_unknown_conversation_id_starts_it(api: Client, user: Any) -> None:
    new_id = uuid.uuid4()
    response = chat(api, {"message": "Hi", "conversation": str(new_id)})
    b"".join(response.streaming_content)
    assert Conversation.objects.get(pk=new_id).owner == user


def test_a_second_reply_while_one_streams_is_409(api: Client) -> None:
    ScriptedProvider.enqueue([TextDelta("slow"), Pause(0.3), Finish()])
    first = chat(api, {"message": "Hi"})
    stream = iter(first.streaming_content)
    start = parse_events(next(stream))[0]
    conversation = start["messageMetadata"]["conversationId"]

    second = chat(api, {"message": "Again", "conversation": conversation})
    assert second.status_code == 409
    assert error_of(second)["code"] == "reply_in_progress"
    b"".join(stream)


def test_use_chat_body(api: Client) -> None:
    ScriptedProvider.enqueue([TextDelta("Hello from useChat"), Finish()])
    conversation_id = uuid.uuid4()
    body = {
        "id": str(conversation_id),
        "trigger": "submit-message",
        "model": "scripted:model-a",
        "messages": [
            {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "Client copy"}]},
            {"id": "m2", "role": "assistant", "parts": [{"type": "text", "text": "ignored"}]},
            {
                "id": "m3",
                "role": "user",
                "parts": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}],
            },
        ],
    }
    response = chat(api, body)
    assert parse_events(b"".join(response.streaming_content))[-1] == "[DONE]"
    # The server's stored history is the context, not the client's copy.
    assert [(m.role, m.content) for m in ScriptedProvider.calls[0].request.messages] == [
        ("user", "Hello there")
    ]
    assert Conversation.objects.get(pk=conversation_id).title == "Hello there"

    ScriptedProvider.enqueue([TextDelta("Regenerated"), Finish()])
    regenerate = {**body, "trigger": "regenerate-message", "messageId": "m4"}
    b"".join(chat(api, regenerate).streaming_content)
    shown = api.get(f"/api/conversations/{conversation_id}").json()["messages"]
    assert [m["content"] for m in shown] == ["Hello there", "Regenerated"]  # the new version is shown
    assert len(shown[1]["versions"]) == 2  # and the first reply stays, as an earlier version


def test_use_chat_regenerates_the_message_its_message_id_names(api: Client) -> None:
    """``regenerate({messageId})`` of the AI SDK: the reply it names, not the newest one."""
    conversation_id = str(uuid.uuid4())

    def say(text: str) -> str:
        ScriptedProvider.enqueue([TextDelta(f"Answer to {text}"), Finish()])
        body = {"message": text, "conversation": conversation_id, "model": "scripted:model-a"}
        events = parse_events(b"".join(chat(api, body).streaming_content))
        return str(events[0]["messageId"])

    first, _ = say("one"), say("two")
    ScriptedProvider.enqueue([TextDelta("One, again"), Finish()])
    body = {
        "id": conversation_id,
        "trigger": "regenerate-message",
        "messageId": first,
        "model": "scripted:model-a",
        "messages": [],
    }
    b"".join(chat(api, body).streaming_content)
    # The first answer has a new version, on a branch of its own: the newest reply is untouched.
    assert [m.content for m in ScriptedProvider.calls[-1].request.messages] == ["one"]
    shown = api.get(f"/api/conversations/{conversation_id}").json()["messages"]
    assert [m["content"] for m in shown] == ["one", "One, again"]
    assert len(shown[1]["versions"]) == 2

    stranger = {**body, "messageId": str(uuid.uuid4())}
    response = chat(api, stranger)
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "regenerate"


def test_conversations_list_detail_rename_delete(api: Client, user: Any, other_user: Any) -> None:
    Conversation.objects.create(owner=other_user, model="scripted:model-a", title="Not mine")
    ScriptedProvider.enqueue([TextDelta("Answer"), Finish()])
    b"".join(chat(api, {"message": "First"}).streaming_content)
    b"".join(chat(api, {"message": "Another conversation"}).streaming_content)

    listed = api.get("/api/conversations").json()["conversations"]
    assert [c["title"] for c in listed] == ["Another conversation", "First"]
    assert set(listed[0]) == {"id", "title", "model", "created_at", "updated_at", "cost"}

    first_id = listed[1]["id"]
    detail = api.get(f"/api/conversations/{first_id}").json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]
    reply = detail["messages"][1]
    assert set(reply) == {
        "id", "parent", "versions", "role", "content", "reasoning", "parts", "status", "model",
        "finish_reason", "error", "usage", "cost", "ttft_ms", "duration_ms", "created_at",
    }  # fmt: skip
    assert (reply["parent"], reply["versions"]) == (detail["messages"][0]["id"], [reply["id"]])
    assert (reply["content"], reply["status"], reply["error"]) == ("Answer", "complete", None)
    assert reply["usage"]["estimated"] is True  # this script reported no usage

    renamed = api.patch(f"/api/conversations/{first_id}", {"title": "  Renamed  "}, "application/json")
    assert renamed.json()["title"] == "Renamed"
    bad = api.patch(f"/api/conversations/{first_id}", {"title": ""}, "application/json")
    assert (bad.status_code, error_of(bad)["field"]) == (400, "title")
    assert api.patch(f"/api/conversations/{first_id}", b"{", "application/json").status_code == 400

    assert api.delete(f"/api/conversations/{first_id}").status_code == 204
    assert api.get(f"/api/conversations/{first_id}").status_code == 404
    assert Message.objects.filter(conversation_id=first_id).count() == 0


def test_stop_endpoint(api: Client, other_user: Any) -> None:
    ScriptedProvider.enqueue([TextDelta("Partial"), Pause(5), TextDelta("never")])
    response = chat(api, {"message": "Hi"})
    stream = iter(response.streaming_content)
    message_id = parse_events(next(stream))[0]["messageId"]

    stopped = api.post(f"/api/messages/{message_id}/stop")
    assert (stopped.status_code, stopped.json()) == (202, {"id": message_id, "status": "stopping"})
    events = parse_events(b"".join(stream))
    assert events[-2:] == [{"type": "abort", "reason": "stopped"}, "[DONE]"]

    again = api.post(f"/api/messages/{message_id}/stop")
    assert (again.status_code, error_of(again)["code"]) == (409, "not_streaming")
    assert api.post(f"/api/messages/{uuid.uuid4()}/stop").status_code == 404


def test_someone_elses_reply_cannot_be_stopped(api: Client, other_user: Any) -> None:
    conversation = Conversation.objects.create(owner=other_user, model="scripted:model-a")
    message = Message.objects.create(conversation=conversation, role="assistant", status="streaming")
    assert api.post(f"/api/messages/{message.id}/stop").status_code == 404


def test_only_its_owner_can_attach_to_a_reply(api: Client, user: Any, other_user: Any) -> None:
    theirs = Conversation.objects.create(owner=other_user, model="demo:echo", client_id="their-chat")
    reply = Message.objects.create(conversation=theirs, role="assistant", content="Secret", status="complete")
    assert api.get(f"/api/messages/{reply.pk}/stream").status_code == 404
    assert api.get("/api/chat/their-chat/stream").status_code == 404
    assert api.get(f"/api/chat/{theirs.pk}/stream").status_code == 404
    assert api.get("/api/messages/not-a-uuid/stream").status_code == 404
    mine = Conversation.objects.create(owner=user, model="demo:echo", client_id="their-chat")  # per owner
    assert api.get("/api/chat/their-chat/stream").status_code == 204  # mine, and nothing streams in it
    assert api.get(f"/api/conversations/{mine.client_id}").json()["id"] == str(mine.pk)
