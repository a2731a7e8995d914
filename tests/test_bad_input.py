"""Whatever a client or a model sends, the API answers in JSON and the reply is saved: a NUL character
(PostgreSQL text cannot hold one), a body too large, not JSON or sent chunked, token counts no provider
could mean, and two requests that start the same new conversation at once."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from django.test import Client

from streaming.events import Finish, TextDelta, Usage
from streaming.models import Conversation, Message
from streaming.models import Usage as UsageRow
from streaming.providers.scripted import Pause, ScriptedProvider
from tests import replies
from tests.sse import parse_events, text_of

pytestmark = pytest.mark.django_db(transaction=True)


def post(api: Client, body: Any, **extra: Any) -> Any:
    return api.post("/api/chat", body, content_type=extra.pop("content_type", "application/json"), **extra)


def error_of(response: Any) -> dict[str, Any]:
    assert response["Content-Type"] == "application/json", response.content[:200]
    return dict(response.json()["error"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": "a\x00b", "model": "scripted:model-a"}, "message"),
        (
            {
                "id": str(uuid.uuid4()),
                "messages": [{"role": "user", "parts": [{"type": "text", "text": "\x00"}]}],
            },
            "messages",
        ),
    ],
)
def test_a_nul_in_a_message_is_a_json_400(api: Client, body: Any, field: str) -> None:
    response = post(api, body)
    assert response.status_code == 400
    assert error_of(response) == {
        "code": "invalid_request",
        "field": field,
        "message": error_of(response)["message"],
    }
    assert not Message.objects.exists()


def test_a_nul_in_a_title_is_a_json_400(api: Client, user: Any) -> None:
    conversation = Conversation.objects.create(owner=user, model="scripted:model-a", title="Before")
    response = api.patch(
        f"/api/conversations/{conversation.pk}", {"title": "a\x00b"}, content_type="application/json"
    )
    assert (response.status_code, error_of(response)["field"]) == (400, "title")
    conversation.refresh_from_db()
    assert conversation.title == "Before"


def test_a_body_over_the_upload_limit_is_a_json_413(api: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = post(api, {"message": "x" * 2000, "model": "scripted:model-a"})
    assert (response.status_code, error_of(response)["code"]) == (413, "request_too_large")


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data; boundary=xyz", "application/x-www-form-urlencoded", "text/plain"]
)
def test_a_body_that_is_not_json_is_a_json_415(api: Client, content_type: str) -> None:
    response = api.post("/api/chat", b"--xyz\r\nbroken", content_type=content_type)
    assert (response.status_code, error_of(response)["code"]) == (415, "unsupported_media_type")


def test_a_nul_from_the_model_is_dropped_from_what_is_stored(user: Any) -> None:
    """PostgreSQL's text cannot hold a NUL: the reply is stored without it (the stream showed it)."""
    ScriptedProvider.enqueue(
        [TextDelta("be\x00fore "), Pause(0.01), TextDelta("after"), Usage(1, 2), Finish()]
    )
    reply = replies_start(user)
    chunks = replies.chunks(reply)
    assert chunks[-1]["messageMetadata"]["status"] == "complete"
    replies.settle()
    message = Message.objects.get(role="assistant")
    assert (message.status, message.content) == ("complete", "before after")
    assert UsageRow.objects.get().output_tokens == 2


@pytest.mark.parametrize("counts", [(2**40, 5), (-5, 3), (3, 2**31)])
def test_usage_no_provider_could_mean_is_estimated_instead(user: Any, counts: tuple[int, int]) -> None:
    ScriptedProvider.enqueue([TextDelta("Hello there"), Usage(*counts), Finish()])
    chunks = replies.chunks(replies_start(user))
    usage = chunks[-1]["messageMetadata"]["usage"]
    assert usage["estimated"] is True
    assert 0 < usage["outputTokens"] < 100 and 0 < usage["inputTokens"] < 100
    replies.settle()
    assert Message.objects.get(role="assistant").status == "complete"
    row = UsageRow.objects.get()
    assert row.estimated and row.output_tokens == usage["outputTokens"]


def test_the_same_new_conversation_started_twice_at_once_is_a_409(user: Any) -> None:
    ScriptedProvider.enqueue([TextDelta("a"), Pause(1), Finish()])
    ScriptedProvider.enqueue([TextDelta("b"), Pause(1), Finish()])
    conversation = str(uuid.uuid4())
    statuses: list[int] = []
    ready = threading.Barrier(2)

    def start() -> None:
        client = Client()
        client.force_login(user)
        ready.wait()
        response = post(client, {"message": "Hi", "model": "scripted:model-a", "conversation": conversation})
        statuses.append(response.status_code)
        if response.status_code != 200:
            assert error_of(response)["code"] == "reply_in_progress"
        else:
            b"".join(response.streaming_content)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(statuses) == [200, 409]
    assert Conversation.objects.count() == 1


def test_a_chunked_body_reaches_the_api_under_gunicorn(tmp_path_factory: Any) -> None:
    from tests.conftest import require
    from tests.servers import available, running_server

    require(available("gunicorn"), "gunicorn is not installed")
    with running_server("gunicorn", tmp_path_factory.mktemp("chunked")) as server, server.client() as client:
        body = b'{"message": "Sent in pieces", "model": "demo:echo"}'
        pieces = (body[i : i + 7] for i in range(0, len(body), 7))  # no Content-Length: chunked
        response = client.post("/api/chat", content=pieces, headers={"Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        assert "Sent in pieces" in text_of(parse_events(response.content))


def replies_start(user: Any) -> Any:
    from streaming.services import ChatInput, start_reply

    return start_reply(user, ChatInput(None, "Hi", "scripted:model-a"))


@pytest.mark.parametrize(
    "path", ["/api/conversations/%00", "/api/chat/a%00b/stream", f"/api/chat/{'x' * 300}/stream"]
)
def test_an_id_no_conversation_can_have_is_a_json_404(api: Client, path: str) -> None:
    """(Found by the fuzz run on PostgreSQL, which cannot even compare a text with a NUL in it.)"""
    response = api.get(path)
    assert (response.status_code, error_of(response)["code"]) == (404, "not_found")
