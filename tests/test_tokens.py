"""Per-user API tokens: ``manage.py streaming_token`` and the admin make them, a program sends one as
``Authorization: Bearer <token>`` (no session, no CSRF token), only a digest is stored, a wrong or revoked
one is a JSON 401, and no log line ever holds one."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from streaming.models import ApiToken, Conversation, Message
from tests.sse import parse_events, text_of

pytestmark = pytest.mark.django_db(transaction=True)


def bearer(raw: str) -> dict[str, Any]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.fixture
def program() -> Client:
    """A client with no session and no CSRF cookie, which Django would refuse an unsafe request."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def raw(user: Any) -> str:
    return ApiToken.objects.create_token(user, "tests")[1]


def error_of(response: Any) -> dict[str, Any]:
    assert response["Content-Type"] == "application/json"
    return response.json()["error"]


# -- making one --------------------------------------------------------------------------------------


def test_the_command_prints_the_token_once_alone_on_the_last_line(user: Any) -> None:
    out, err = StringIO(), StringIO()
    call_command("streaming_token", "alice", "--name", "nightly report", stdout=out, stderr=err)
    raw = out.getvalue().strip()
    assert out.getvalue() == raw + "\n"  # stdout is the token alone: TOKEN=$(manage.py streaming_token alice)
    assert raw.startswith("stk_") and len(raw) >= 40
    token = ApiToken.objects.get(user=user)
    assert (token.name, token.prefix) == ("nightly report", raw[:12])
    assert token.digest == hashlib.sha256(raw.encode()).hexdigest()  # stored: a digest, never the token
    assert raw not in err.getvalue() and token.prefix in err.getvalue()
    assert "shown only now" in err.getvalue()


def test_the_command_refuses_unknown_and_inactive_users(django_user_model: Any) -> None:
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("streaming_token", "nobody")
    django_user_model.objects.create_user("gone", is_active=False)
    with pytest.raises(CommandError, match="inactive"):
        call_command("streaming_token", "gone")
    assert not ApiToken.objects.exists()


def test_two_tokens_differ(user: Any) -> None:
    first = ApiToken.objects.create_token(user, "a")[1]
    second = ApiToken.objects.create_token(user, "b")[1]
    assert first != second


# -- using one ---------------------------------------------------------------------------------------


def test_a_token_reads_the_api_without_a_session(program: Client, raw: str) -> None:
    response = program.get("/api/models", **bearer(raw))
    assert response.status_code == 200
    assert response.json()["default"] == "scripted:model-a"
    assert "sessionid" not in response.cookies


def test_a_token_streams_a_reply_without_csrf(program: Client, raw: str, user: Any) -> None:
    body = {"message": "Hello from a script", "model": "demo:echo"}
    response: Any = program.post("/api/chat", body, content_type="application/json", **bearer(raw))
    assert response.status_code == 200
    events = parse_events(b"".join(response.streaming_content))
    assert 'You said: "Hello from a script"' in text_of(events)
    assert events[-2]["messageMetadata"]["status"] == "complete"
    assert Conversation.objects.get().owner == user


def test_a_token_stops_a_reply_without_csrf(program: Client, raw: str, user: Any) -> None:
    conversation = Conversation.objects.create(owner=user, model="demo:echo")
    streaming = Message.objects.create(conversation=conversation, role="assistant", status="streaming")
    response = program.post(f"/api/messages/{streaming.id}/stop", **bearer(raw))
    # (no process streams it: the stop ends it itself, once it has waited for one to hear)
    assert (response.status_code, response.json()["status"]) == (200, "cancelled")


def test_the_token_decides_whatever_the_session_says(raw: str, other_user: Any) -> None:
    bobs_browser = Client(enforce_csrf_checks=True)
    bobs_browser.force_login(other_user)
    body = {"message": "Whose is this?", "model": "demo:echo"}
    response: Any = bobs_browser.post("/api/chat", body, content_type="application/json", **bearer(raw))
    b"".join(response.streaming_content)
    assert Conversation.objects.get().owner.username == "alice"


@pytest.mark.parametrize(
    "header",
    ["Bearer stk_not-a-token-of-anyone", "Bearer ", "bearer stk_x", "Bearer stk_a stk_b"],
)
def test_a_wrong_token_is_a_json_401(program: Client, raw: str, header: str) -> None:
    response = program.get("/api/models", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert error_of(response) == {
        "code": "not_authenticated",
        "message": "This API token is not valid, or was revoked.",
    }
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_revoked_token_or_an_inactive_user_opens_nothing(program: Client, raw: str, user: Any) -> None:
    ApiToken.objects.update(revoked_at=timezone.now())
    assert program.get("/api/models", **bearer(raw)).status_code == 401
    ApiToken.objects.update(revoked_at=None)
    user.is_active = False
    user.save()
    response = program.post("/api/chat", {"message": "Hi"}, content_type="application/json", **bearer(raw))
    assert (response.status_code, error_of(response)["code"]) == (401, "not_authenticated")


def test_another_scheme_leaves_the_session_to_decide(api: Client, program: Client) -> None:
    assert program.get("/api/models", HTTP_AUTHORIZATION="Basic YWxpY2U6cHc=").status_code == 401
    assert api.get("/api/models", HTTP_AUTHORIZATION="Basic YWxpY2U6cHc=").status_code == 200


def test_last_used_is_noted_without_a_write_per_request(program: Client, raw: str) -> None:
    assert ApiToken.objects.get().last_used_at is None
    program.get("/api/models", **bearer(raw))
    first = ApiToken.objects.get().last_used_at
    assert first is not None
    with CaptureQueriesContext(connection) as queries:
        program.get("/api/models", **bearer(raw))
    assert [q["sql"] for q in queries if q["sql"].startswith("UPDATE")] == []  # within the minute: no write
    ApiToken.objects.update(last_used_at=first - timedelta(minutes=2))
    program.get("/api/models", **bearer(raw))
    last_used = ApiToken.objects.get().last_used_at
    assert last_used is not None and last_used > first


def test_no_log_line_holds_a_token(program: Client, raw: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"message": "Hi", "model": "demo:echo"}
    answer: Any = program.post("/api/chat", body, content_type="application/json", **bearer(raw))
    b"".join(answer.streaming_content)
    program.get("/api/models", **bearer(raw + "x"))  # logged as "Unauthorized: /api/models"
    ApiToken.objects.update(revoked_at=timezone.now())
    program.post("/api/chat", body, content_type="application/json", **bearer(raw))
    assert any(record.levelno >= logging.WARNING for record in caplog.records)  # something was logged
    for record in caplog.records:
        assert raw not in record.getMessage()
        assert raw not in repr(record.__dict__)


# -- the admin ---------------------------------------------------------------------------------------


def test_the_admin_shows_a_new_token_once(admin_client: Client, user: Any) -> None:
    page = admin_client.post("/admin/streaming/apitoken/add/", {"user": user.pk, "name": "deploy bot"})
    assert page.status_code == 200
    token = ApiToken.objects.get()
    raw = page.context["raw_token"]
    assert f">{raw}</code>" in page.content.decode()  # shown, to be copied
    assert token.digest == hashlib.sha256(raw.encode()).hexdigest() and token.user == user
    assert "no-store" in page["Cache-Control"] or "no-cache" in page["Cache-Control"]
    listing = admin_client.get("/admin/streaming/apitoken/").content.decode()
    assert token.prefix in listing and raw not in listing
    assert raw not in admin_client.get(f"/admin/streaming/apitoken/{token.pk}/change/").content.decode()
    entry = LogEntry.objects.get()
    assert raw not in entry.object_repr + entry.change_message
    assert Client().get("/api/models", **bearer(raw)).status_code == 200


def test_the_admin_revokes_tokens(admin_client: Client, raw: str) -> None:
    token = ApiToken.objects.get()
    done = admin_client.post(
        "/admin/streaming/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    assert "Revoked 1 API token." in done.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert Client().get("/api/models", **bearer(raw)).status_code == 401
    active = admin_client.get("/admin/streaming/apitoken/", {"status": "active"}).content.decode()
    revoked = admin_client.get("/admin/streaming/apitoken/", {"status": "revoked"}).content.decode()
    assert (token.prefix in active, token.prefix in revoked) == (False, True)
