"""A fuzz run over every endpoint of the API (hypothesis): any method, any id, any body (JSON of any
shape, text with NUL characters, numbers no field takes, other content types), any ``Last-Event-ID``.
No answer is a 500, and none is HTML: a JSON error, a stream, or an empty 204."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streaming.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "message",
    "model",
    "conversation",
    "reasoning",
    "regenerate",
    "continue",
    "id",
    "messages",
    "trigger",
    "parent",
    "edit",
]
MODELS = ["demo:echo", "scripted:model-a", "nope:none", "", "demo"]
chat_bodies = st.fixed_dictionaries(
    {},
    optional={
        "message": st.text(max_size=40) | json_values,
        "model": st.sampled_from(MODELS) | json_values,
        "conversation": st.just("SELF") | st.uuids().map(str) | st.text(max_size=110) | json_values,
        "reasoning": json_values,
        "regenerate": json_values,
        "continue": st.just("REPLY") | st.uuids().map(str) | json_values,
        "id": st.just("SELF") | st.text(max_size=20) | json_values,
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "assistant", "x"]) | json_values},
                optional={
                    "parts": st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": json_values}))
                },
            ),
            max_size=3,
        )
        | json_values,
        "trigger": st.sampled_from(["submit-message", "regenerate-message", "x"]) | json_values,
        "parent": st.sampled_from(["REPLY", "SELF"]) | st.uuids().map(str) | json_values,
        "edit": st.sampled_from(["REPLY", "QUESTION"]) | st.uuids().map(str) | json_values,
    },
)


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode()  # (numbers past 64 bits too, which orjson refuses to write)


bodies = chat_bodies.map(encoded) | json_values.map(encoded) | st.binary(max_size=60)
ids = st.sampled_from(["SELF", "REPLY", "not-a-uuid", "x" * 120, "%00", "..", "chat-abc"]) | st.uuids().map(
    str
)
PATHS = [
    "/api/models",
    "/api/conversations",
    "/api/conversations/{id}",
    "/api/conversations/{id}/export",
    "/api/chat",
    "/api/chat/{id}/stream",
    "/api/budget",
    "/api/messages/{id}/stop",
    "/api/messages/{id}/stream",
]
CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=b",
    "application/ld+json",
    "",
]


#: Query parameters of the GET endpoints (search, pages, branches, export formats), with values of any kind.
queries = st.dictionaries(
    st.sampled_from(["q", "cursor", "limit", "branch", "format", "after"]),
    st.sampled_from(["REPLY", "md", "json", "0", "201", "-1", "%00", "x" * 250, "bWVo", "MjAyNnx4"])
    | st.text(max_size=20),
    max_size=3,
)
#: What a successful answer may be: JSON, a stream, or an export's Markdown.
KINDS = ("application/json", "text/event-stream", "text/markdown; charset=utf-8")


@pytest.fixture
def known(user: Any) -> dict[str, str]:
    conversation = Conversation.objects.create(owner=user, model="demo:echo", title="Known")
    question = Message.objects.create(conversation=conversation, role="user", content="Hi")
    reply = Message.objects.create(
        conversation=conversation, role="assistant", content="Cut", status="cancelled"
    )
    return {"SELF": str(conversation.pk), "REPLY": str(reply.pk), "QUESTION": str(question.pk)}


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT"]),
    path=st.sampled_from(PATHS),
    target=ids,
    body=bodies,
    content_type=st.sampled_from(CONTENT_TYPES),
    last_event=st.none() | st.sampled_from(["0", "-1", "-2", "x", "99999999999999999999", "3.5"]),
    query=queries,
)
def test_no_answer_is_a_500_or_html(
    api: Client, known: dict[str, str], method: str, path: str, target: str, body: bytes, content_type: str,
    last_event: str | None, query: dict[str, str],
) -> None:  # fmt: skip
    url = path.replace("{id}", known.get(target, target))
    if query:
        url += "?" + urlencode({name: known.get(value, value) for name, value in query.items()})
    raw = body
    for name, value in known.items():
        raw = raw.replace(f'"{name}"'.encode(), f'"{value}"'.encode())
    headers: dict[str, Any] = {}
    if last_event is not None:
        headers["HTTP_LAST_EVENT_ID"] = last_event
    response = api.generic(method, url, raw, content_type=content_type, **headers)
    assert response.status_code < 500, (response.status_code, content_of(response))
    kind = response.get("Content-Type", "")
    if response.status_code == 204:
        return
    assert kind in KINDS, (
        response.status_code,
        kind,
        content_of(response),
    )
    if kind == "text/event-stream":
        assert content_of(response).rstrip().endswith(b"data: [DONE]")


def content_of(response: Any) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return bytes(response.content)


def test_the_fuzz_ids_and_bodies_reach_real_rows(api: Client, known: dict[str, str]) -> None:
    """(The run above uses these: a continued reply and a conversation that exist.)"""
    response = api.post(
        "/api/chat", {"continue": known["REPLY"], "model": "demo:echo"}, content_type="application/json"
    )
    assert response.status_code == 200
    assert b"data: [DONE]" in content_of(response)
    assert uuid.UUID(known["SELF"])
