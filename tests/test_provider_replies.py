"""Retries, fallbacks and failures in the middle of a reply, through the real SDKs: ``POST /api/chat`` on
the sync (WSGI) and the async (ASGI) path, each vendor behind its own fake upstream, counting the
calls each one receives."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from django.test import Client

from streaming.models import Message
from tests.fake_upstream import VENDORS, FakeUpstream, Reply
from tests.real_providers import BY_NAME, MODEL, body, configure, post, use_key
from tests.sse import parse_events, text_of

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-test-1234567890"
MODES = ["sync", "async"]


@pytest.fixture
def upstreams(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, FakeUpstream]]:
    """One fake upstream per vendor, so that each one's calls can be counted."""
    use_key(monkeypatch, KEY)
    with ExitStack() as stack:
        yield {vendor.name: stack.enter_context(FakeUpstream()) for vendor in VENDORS}


def chunks(sse: bytes) -> list[Any]:
    return [event for event in parse_events(sse) if isinstance(event, dict)]


def errors(sse: bytes) -> list[dict[str, Any]]:
    return [event for event in chunks(sse) if event["type"] == "error"]


def finish(sse: bytes) -> dict[str, Any]:
    last: dict[str, Any] = chunks(sse)[-1]
    assert last["type"] == "finish"
    return last


@pytest.mark.parametrize("mode", MODES)
def test_a_used_up_quota_is_not_retried_but_the_fallback_is_tried(
    upstreams: dict[str, FakeUpstream], settings: Any, api: Client, user: Any, mode: str
) -> None:
    configure(settings, upstreams, FALLBACKS={MODEL["openai"]: [MODEL["anthropic"]]})
    quota = {
        "error": {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }
    upstreams["openai"].enqueue(Reply.json(429, quota), Reply.stream(BY_NAME["openai"].complete("No")))
    upstreams["anthropic"].enqueue(Reply.stream(BY_NAME["anthropic"].complete("From Claude")))

    sse = post(mode, api, user, body("openai"))

    assert len(upstreams["openai"].requests) == 1  # a billing problem: calling again would not help
    assert len(upstreams["anthropic"].requests) == 1
    assert text_of(parse_events(sse)) == "From Claude"
    assert finish(sse)["messageMetadata"]["status"] == "complete"
    message = Message.objects.get(role="assistant")
    assert (message.status, message.model) == ("complete", MODEL["anthropic"])
