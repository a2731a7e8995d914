"""Usage the vendor reported before a reply ended early is kept: a reply stopped after Anthropic's
``message_start``, or failed after Gemini's running totals, is saved with the vendor's exact input
counts, an output count no lower than either the vendor's or the estimate from the text, and
``estimated`` true (it is not the vendor's final count). A reply with the final count is unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from django.test import Client

from streaming.budgets import BudgetGuard
from streaming.conf import ModelSpec
from streaming.events import Event, TextDelta, Usage, estimate_tokens
from streaming.exceptions import Overloaded
from streaming.models import Message
from streaming.models import Usage as UsageRow
from streaming.providers.base import ChatMessage
from streaming.reply import ReplyState
from streaming.replylog import Transcript
from tests.fake_upstream import (
    FakeUpstream,
    Hold,
    Reply,
    anthropic_message,
    anthropic_sse,
    gemini_chunk,
    gemini_sse,
)
from tests.real_providers import body, configure, post, post_and_stop, use_key
from tests.sse import parse_events

MODES = ["sync", "async"]
SPEC = ModelSpec("scripted:model-a", "scripted", "model-a", "model-a", False)
CONTEXT = [ChatMessage("user", "x" * 400)]  # an estimate of 100 input tokens


def reply() -> ReplyState:
    return ReplyState("m", "c", "u", 1, SPEC, CONTEXT)


# -- the reply's arithmetic ---------------------------------------------------------------------------


def test_a_stopped_reply_keeps_the_reported_input_side_and_the_larger_output() -> None:
    state = reply()
    report = Usage(5000, 2, cached_input_tokens=4000, cache_write_tokens=700, partial=True)
    state.on_event(TextDelta("Hel"))
    state.on_event(report)
    state.on_event(TextDelta("lo, and a good deal more text than two tokens"))
    state.cancel("stopped")
    assert state.total_usage == Usage(
        input_tokens=5000,
        output_tokens=estimate_tokens(state.text),  # 12: more than the 2 reported at the start
        cached_input_tokens=4000,
        cache_write_tokens=700,
        estimated=True,
    )


def test_a_reported_output_larger_than_the_estimate_wins() -> None:
    # Gemini counts thoughts it does not send unless asked: the text alone would undercount them.
    state = reply()
    state.on_event(TextDelta("Hi"))
    state.on_event(Usage(input_tokens=30, output_tokens=85, reasoning_tokens=80, partial=True))
    state.fail(Overloaded())
    assert state.total_usage == Usage(input_tokens=30, output_tokens=85, reasoning_tokens=80, estimated=True)


def test_the_final_count_is_kept_as_it_is() -> None:
    state = reply()
    state.on_event(TextDelta("Hello"))
    state.on_event(Usage(input_tokens=30, output_tokens=1, partial=True))
    state.on_event(Usage(input_tokens=31, output_tokens=2))
    state.complete()
    assert state.total_usage == Usage(input_tokens=31, output_tokens=2)
    assert state.metadata()["usage"]["estimated"] is False


def test_without_a_report_the_estimate_is_as_before() -> None:
    state = reply()
    state.on_event(TextDelta("Hello"))
    state.cancel("disconnected")
    assert state.total_usage == Usage(input_tokens=100, output_tokens=2, estimated=True)


def test_partial_reports_do_not_split_a_run_of_deltas() -> None:
    """A running count (Gemini sends one with each chunk) makes no chunk: the deltas around it still leave
    as one, when they arrived together."""
    state = reply()
    transcript = Transcript("m")
    events: list[Event] = [
        TextDelta("a"),
        Usage(10, 1, partial=True),
        TextDelta("b"),
        Usage(10, 2, partial=True),
    ]
    for event in events:
        transcript.append(state.on_event(event))
    found = transcript.read(-1)
    assert found is not None
    assert [orjson.loads(c) for c in found.json_chunks()] == [
        {"type": "text-start", "id": "t1"},
        {"type": "text-delta", "id": "t1", "delta": "ab"},
    ]
    assert state.reported == Usage(10, 2, partial=True)  # the latest report is the one kept


def test_the_budget_guard_counts_a_partial_report() -> None:
    guard = BudgetGuard(Decimal("0.001"), {SPEC.id: (Decimal(0), Decimal("0.00001"), Decimal(0))})
    assert not guard.crossed([TextDelta("Hi"), Usage(10, 50, partial=True)], SPEC.id)  # 50 tokens: $0.0005
    assert guard.crossed([TextDelta("!"), Usage(10, 150, partial=True)], SPEC.id)  # 150 tokens: $0.0015


# -- through the app and the real SDKs -----------------------------------------------------------------


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    use_key(monkeypatch, "sk-test-1234567890")
    with FakeUpstream() as server:
        yield server


START = {
    "input_tokens": 1200,
    "cache_read_input_tokens": 3000,
    "cache_creation_input_tokens": 500,
    "output_tokens": 1,
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", MODES)
def test_a_reply_stopped_after_anthropics_message_start_has_its_exact_input(
    upstream: FakeUpstream, settings: Any, api: Client, user: Any, mode: str
) -> None:
    configure(settings, {"anthropic": upstream})
    text = "Hello there, this is the start of a long answer"
    events = anthropic_message([text], start_usage=START)[:4]  # message_start, ping, block, text
    upstream.enqueue(Reply.stream([*anthropic_sse(events), Hold(20.0)]))

    sse = post_and_stop(mode, api, user, body("anthropic"))

    assert parse_events(sse)[-2] == {"type": "abort", "reason": "stopped"}
    assert upstream.last.hung_up.wait(5.0)
    message = Message.objects.get(role="assistant")
    assert (message.status, message.content) == ("cancelled", text)
    row = UsageRow.objects.get(message=message)
    assert (row.input_tokens, row.cached_input_tokens, row.cache_write_tokens) == (4700, 3000, 500)
    assert row.output_tokens == estimate_tokens(text)  # more than the 1 reported at the start
    assert row.estimated is True
    metadata = parse_events(sse)[-3]["messageMetadata"]
    assert metadata["usage"]["inputTokens"] == 4700
    assert metadata["usage"]["estimated"] is True


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", MODES)
def test_a_gemini_reply_that_fails_after_two_chunks_keeps_its_prompt_count(
    upstream: FakeUpstream, settings: Any, api: Client, user: Any, mode: str
) -> None:
    configure(settings, {"gemini": upstream})
    chunks = [
        gemini_chunk("Hel", usage={"promptTokenCount": 321, "cachedContentTokenCount": 256}),
        gemini_chunk(
            "lo", usage={"promptTokenCount": 321, "cachedContentTokenCount": 256, "candidatesTokenCount": 40}
        ),
        {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
    ]
    upstream.enqueue(Reply.stream(gemini_sse(chunks)))

    sse = post(mode, api, user, body("gemini"))

    assert [e["code"] for e in parse_events(sse) if isinstance(e, dict) and e["type"] == "error"] == [
        "overloaded"
    ]
    assert len(upstream.requests) == 1
    message = Message.objects.get(role="assistant")
    assert (message.status, message.content) == ("error", "Hello")
    row = UsageRow.objects.get(message=message)
    assert (row.input_tokens, row.cached_input_tokens, row.output_tokens) == (321, 256, 40)
    assert row.estimated is True


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", MODES)
def test_a_complete_reply_has_the_vendors_final_count(
    upstream: FakeUpstream, settings: Any, api: Client, user: Any, mode: str
) -> None:
    configure(settings, {"anthropic": upstream})
    events = anthropic_message(["Hello", "!"], start_usage=START, delta_usage={"output_tokens": 9})
    upstream.enqueue(Reply.stream(anthropic_sse(events)))

    sse = post(mode, api, user, body("anthropic"))

    assert parse_events(sse)[-2]["messageMetadata"]["usage"] == {
        "inputTokens": 4700,
        "outputTokens": 9,
        "cachedInputTokens": 3000,
        "cacheWriteTokens": 500,
        "reasoningTokens": 0,
        "estimated": False,
    }
    row = UsageRow.objects.get()
    assert (row.input_tokens, row.output_tokens, row.estimated) == (4700, 9, False)
