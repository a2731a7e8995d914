"""A client that goes away right after the ``start`` chunk (the first write of the response fails, as
it does under WSGI when the client closed its socket while the view ran) leaves a ``cancelled``
reply, not one stuck ``streaming`` that blocks its conversation until it turns stale."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streaming import services
from streaming.models import Message
from streaming.providers.scripted import ScriptedProvider
from tests import replies

pytestmark = pytest.mark.django_db(transaction=True)


def start(user: Any) -> Any:
    return services.start_reply(user, services.ChatInput(None, "Hi", "scripted:model-a"))


def assert_cancelled_before_the_provider() -> None:
    replies.settle()
    message = Message.objects.get(role="assistant")
    assert (message.status, message.error_code) == ("cancelled", "disconnected")
    assert not ScriptedProvider.calls


def test_wsgi(user: Any) -> None:
    batches = replies.batches(start(user))
    assert next(batches)[0]["type"] == "start"
    batches.close()
    assert_cancelled_before_the_provider()


def test_asgi(user: Any) -> None:
    reply = start(user)

    async def consume() -> None:
        batches = replies.abatches(reply)
        assert (await anext(batches))[0]["type"] == "start"
        await batches.aclose()

    asyncio.run(consume())
    assert_cancelled_before_the_provider()
