"""A vendor that echoes the API key in its error (an HTTP error body, or an error event in the middle of
the stream) never gets it shown: not in the stream the browser reads, the stored message, the usage
rows, the conversation API, the admin pages, or any log record, for every provider, sync and async."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from streaming.models import Conversation, Message, Usage
from tests.fake_upstream import VENDORS, FakeUpstream, Reply, Vendor
from tests.real_providers import body, configure, post, use_key
from tests.sse import parse_events, text_of

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-test-SECRET-4242"
ECHO = f"Incorrect API key provided: {KEY}. You can find your API key in your account."


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    use_key(monkeypatch, KEY)
    with FakeUpstream() as server:
        yield server


def http_error(vendor: Vendor) -> Reply:
    return Reply.json(401, vendor.error_body(401, ECHO))


def stream_error(vendor: Vendor) -> Reply:
    return Reply.stream([*vendor.partial("Hel"), *vendor.stream_error(ECHO)])


def log_text(records: list[logging.LogRecord]) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in records)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("failure", "code", "text"), [(http_error, "auth", ""), (stream_error, "upstream", "Hel")]
)
@pytest.mark.parametrize("vendor", VENDORS, ids=lambda vendor: vendor.name)
def test_an_echoed_key_reaches_no_one(
    upstream: FakeUpstream,
    vendor: Vendor,
    failure: Any,
    code: str,
    text: str,
    mode: str,
    settings: Any,
    api: Client,
    user: Any,
    admin_client: Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="streaming")
    configure(settings, {vendor.name: upstream})
    upstream.enqueue(failure(vendor))

    sse = post(mode, api, user, body(vendor))

    events = parse_events(sse)
    [error] = [e for e in events if isinstance(e, dict) and e["type"] == "error"]
    assert error["code"] == code
    assert "Incorrect API key provided: [redacted]" in error["errorText"]  # the vendor's words, less the key
    assert text_of(events) == text
    assert len(upstream.requests) == 1
    message = Message.objects.get(role="assistant")
    assert (message.status, message.content, message.error_code) == ("error", text, code)
    conversation = Conversation.objects.get()
    shown = {
        "the stream": sse.decode(),
        "the messages": str(list(Message.objects.values())),
        "the usage rows": str(list(Usage.objects.values())),
        "the conversation API": api.get(f"/api/conversations/{conversation.pk}").content.decode(),
        "the conversation's admin page": page(admin_client, f"conversation/{conversation.pk}/change/"),
        "the usage list": page(admin_client, "usage/"),
        "the logs": caplog.text + log_text(caplog.records),
    }
    for usage in Usage.objects.all():
        shown[f"usage row {usage.pk}"] = page(admin_client, f"usage/{usage.pk}/change/")
    assert Usage.objects.count() == (1 if text else 0)  # a reply with text has its (estimated) usage
    leaks = [where for where, content in shown.items() if "SECRET" in content]
    assert leaks == []


def page(client: Client, path: str) -> str:
    response = client.get(f"/admin/streaming/{path}")
    assert response.status_code == 200
    return response.content.decode()
