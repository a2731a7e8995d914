"""A message's parts: folded from the stream's chunks as the AI SDK's client folds them, replayed as the
same chunks, and kept whole when a reply whose process died mid-tool-loop is taken over."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from streaming.models import Message
from streaming.models import Usage as UsageRow
from streaming.parts import Parts, replay_chunks, text_of
from streaming.saving import checkpoint
from tests.test_services import ask

CHUNKS: list[dict[str, Any]] = [
    {"type": "start-step"},
    {"type": "reasoning-start", "id": "r1"},
    {"type": "reasoning-delta", "id": "r1", "delta": "Look it "},
    {"type": "reasoning-delta", "id": "r1", "delta": "up."},
    {"type": "reasoning-end", "id": "r1", "providerMetadata": {"anthropic": {"signature": "c2ln"}}},
    {"type": "text-start", "id": "t1"},
    {"type": "text-delta", "id": "t1", "delta": "Checking."},
    {"type": "text-end", "id": "t1"},
    {"type": "tool-input-start", "toolCallId": "c1", "toolName": "add"},
    {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '{"a": 1, "b": 2}'},
    {"type": "tool-input-available", "toolCallId": "c1", "toolName": "add", "input": {"a": 1, "b": 2}},
    {"type": "tool-input-start", "toolCallId": "c2", "toolName": "mail"},
    {"type": "tool-input-available", "toolCallId": "c2", "toolName": "mail", "input": {"to": "ada"}},
    {"type": "tool-approval-request", "approvalId": "approval_c2", "toolCallId": "c2"},
    {"type": "tool-output-available", "toolCallId": "c1", "output": 3, "toolMetadata": {"durationMs": 4}},
    {"type": "finish-step"},
    {"type": "start-step"},
    {"type": "text-start", "id": "t2"},
    {"type": "text-delta", "id": "t2", "delta": "It is 3."},
    {"type": "text-end", "id": "t2"},
]


def fold(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parts = Parts()
    for chunk in chunks:
        parts.add(chunk)
    return parts.result()


def test_the_parts_of_a_stream() -> None:
    assert fold(CHUNKS) == [
        {"type": "step-start"},
        {
            "type": "reasoning",
            "text": "Look it up.",
            "providerMetadata": {"anthropic": {"signature": "c2ln"}},
        },
        {"type": "text", "text": "Checking."},
        {
            "type": "tool-add",
            "toolCallId": "c1",
            "state": "output-available",
            "input": {"a": 1, "b": 2},
            "output": 3,
            "toolMetadata": {"durationMs": 4},
        },
        {
            "type": "tool-mail",
            "toolCallId": "c2",
            "state": "approval-requested",
            "input": {"to": "ada"},
            "approval": {"id": "approval_c2"},
        },
        {"type": "step-start"},
        {"type": "text", "text": "It is 3."},
    ]
    assert text_of(fold(CHUNKS)) == "Checking.\n\nIt is 3."


def test_stored_parts_replay_as_the_stream_that_made_them() -> None:
    parts = fold(CHUNKS)
    assert fold(replay_chunks(parts)) == parts


@pytest.mark.django_db(transaction=True)
def test_a_reply_whose_process_died_mid_loop_keeps_its_steps(user: Any) -> None:
    reply = ask(user)  # never streamed: as if its process died after its last checkpoint
    checkpoint(reply.message_id, fold(CHUNKS[:11]))  # the first step, its tool call running
    Message.objects.filter(pk=reply.message_id).update(updated_at=timezone.now() - timedelta(minutes=10))

    call_command("mark_interrupted")

    message = Message.objects.get(pk=reply.message_id)
    assert message.status == "interrupted"
    assert message.content == "Checking."
    assert message.parts[-1] == {
        "type": "tool-add",
        "toolCallId": "c1",
        "state": "input-available",
        "input": {"a": 1, "b": 2},
    }
    row = UsageRow.objects.get(message=message)
    assert row.estimated and row.output_tokens > 0
