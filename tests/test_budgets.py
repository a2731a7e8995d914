"""Monthly budgets: 402 before any provider call when the month's budget is spent, a reply stopped with
``budget_exceeded`` when it crosses the budget while streaming (and saved with its usage), per-user
overrides, and the spend endpoint."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from streaming import budgets
from streaming.conf import app_settings
from streaming.database import write_transaction
from streaming.events import Finish, TextDelta, ToolCall
from streaming.events import Usage as Counts
from streaming.exceptions import BudgetExceeded
from streaming.models import BudgetReservation, Message, Usage, UserBudget
from streaming.providers.base import ChatMessage
from streaming.providers.scripted import Pause, ScriptedProvider, text_reply
from streaming.services import ChatInput, start_reply
from tests import replies
from tests.costs import d, priced_streaming, usage_row
from tests.queries import TRANSACTION_CONTROL, all_queries

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "openai:gpt-4.1-mini"  # $0.40 / M input, $1.60 / M output


@pytest.fixture
def limited(settings: Any) -> None:
    """A $1 default monthly budget, written as the demo project reads it from the environment."""
    settings.STREAMING = priced_streaming(MONTHLY_BUDGET_USD="1.00")


def spend(user: Any, dollars: str, at: datetime | None = None) -> None:
    """Store usage of gpt-4.1-mini input worth ``dollars``."""
    usage_row(user, input_tokens=int(Decimal(dollars) / Decimal("0.4") * 1_000_000), output_tokens=0, at=at)


def chat(api: Any, text: str = "Hello", model: str = MODEL) -> Any:
    """POST a message; a stream is read to its end (the reply is saved then)."""
    body = json.dumps({"message": text, "model": model})
    response = api.post("/api/chat", body, content_type="application/json")
    if response.streaming:
        text = b"".join(response.streaming_content).decode()
        lines = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        response.chunks = [json.loads(line) for line in lines if line != "[DONE]"]
    return response


# -- before the reply ------------------------------------------------------------------------------------


def test_no_budget_by_default(user: Any, api: Any, settings: Any) -> None:
    settings.STREAMING = priced_streaming()
    spend(user, "500")
    assert app_settings.monthly_budget_usd is None
    assert chat(api).status_code == 200
    status = api.get("/api/budget").json()
    assert (status["limit"], status["remaining"], status["currency"]) == (None, None, "USD")
    assert Decimal(status["spent"]) > Decimal("500")


def test_over_budget_is_a_402_before_any_provider_call(user: Any, api: Any, limited: None) -> None:
    spend(user, "1.00")
    response = chat(api)
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "budget_exceeded"
    assert "$1.00 of your $1.00 monthly budget" in error["message"]
    assert "renews on" in error["message"]
    assert ScriptedProvider.calls == []
    assert not Message.objects.exists()


def test_a_small_budget_reads_in_the_admin_money_format(user: Any, api: Any, settings: Any) -> None:
    """A few cents over a budget of a few cents: the sentence tells the amounts apart (not "$0.04 of
    your $0.04")."""
    settings.STREAMING = priced_streaming(MONTHLY_BUDGET_USD="0.04")
    spend(user, "0.0412")
    error = chat(api).json()["error"]
    assert "You have used $0.0412 of your $0.04 monthly budget." in error["message"]


def test_under_budget_replies_and_reports_what_is_left(user: Any, api: Any, limited: None) -> None:
    spend(user, "0.25")
    assert chat(api).status_code == 200
    status = api.get("/api/budget").json()
    assert status["limit"] == "1.0000000000"
    spent = Decimal(status["spent"])
    assert spent > Decimal("0.25")  # and the reply just made
    assert Decimal(status["remaining"]) == Decimal(1) - spent
    start = datetime.fromisoformat(status["period_start"])
    assert (start.day, start.hour, start.minute) == (1, 0, 0)
    assert datetime.fromisoformat(status["period_end"]) > timezone.now()


def test_last_month_and_unpriced_usage_do_not_count(user: Any, api: Any, limited: None) -> None:
    spend(user, "5", at=budgets.month_start() - timedelta(seconds=1))
    usage_row(user, "openai", "no-such-model", input_tokens=10_000_000)
    assert chat(api).status_code == 200
    assert Decimal(api.get("/api/budget").json()["spent"]) < Decimal("0.01")  # just the reply


def test_other_users_spend_does_not_count(user: Any, other_user: Any, api: Any, limited: None) -> None:
    spend(other_user, "3")
    assert chat(api).status_code == 200


def test_a_user_override_raises_lowers_or_lifts_the_limit(user: Any, api: Any, limited: None) -> None:
    spend(user, "2")
    assert chat(api).status_code == 402
    budget = UserBudget.objects.create(user=user, monthly_usd=Decimal("10"))
    assert chat(api).status_code == 200
    assert api.get("/api/budget").json()["limit"] == "10.0000000000"
    budget.monthly_usd = None  # unlimited for this user, whatever the default
    budget.save()
    assert chat(api).status_code == 200
    assert api.get("/api/budget").json()["limit"] is None
    budget.monthly_usd = Decimal("0")
    budget.save()
    assert chat(api).status_code == 402


def test_a_zero_budget_refuses_everything(user: Any, api: Any, settings: Any) -> None:
    settings.STREAMING = priced_streaming(MONTHLY_BUDGET_USD=0)
    assert chat(api).status_code == 402


@pytest.mark.parametrize("value", ["ten", "-1", "NaN", "Infinity"])
def test_a_malformed_budget_setting_is_a_configuration_error(settings: Any, value: str) -> None:
    settings.STREAMING = priced_streaming(MONTHLY_BUDGET_USD=value)
    with pytest.raises(ImproperlyConfigured):
        _ = app_settings.monthly_budget_usd


def reserve(user: Any, context: str = "Hello") -> budgets.BudgetGuard | None:
    """Reserve a reply of ``MODEL`` as ``start_reply`` does: in a write transaction."""
    spec = app_settings.get_model(MODEL)
    assert spec is not None
    with write_transaction():
        return budgets.reserve(user.pk, uuid.uuid4(), spec, [ChatMessage("user", context)], reasoning=False)


def test_reserving_is_four_queries(user: Any, limited: None) -> None:
    spend(user, "0.5")
    with CaptureQueriesContext(connection) as queries:
        guard = reserve(user)
    assert guard is not None and guard.remaining == d("0.5")
    work = [q["sql"].split(" ", 1)[0].upper() for q in queries.captured_queries]
    work = [kind for kind in work if kind not in TRANSACTION_CONTROL]
    # The turn (the user's row, locked), the budget (limit, spend, reservations), the price overrides,
    # and the reservation.
    assert work == ["SELECT", "SELECT", "SELECT", "INSERT"]
    UserBudget.objects.create(user=user, monthly_usd=Decimal("0.5"))
    with pytest.raises(BudgetExceeded):
        reserve(user)


def test_without_a_budget_reserving_is_one_small_query(user: Any, settings: Any) -> None:
    settings.STREAMING = priced_streaming()
    spend(user, "0.5")
    with CaptureQueriesContext(connection) as queries:
        assert reserve(user) is None
    [query] = [q for q in queries.captured_queries if q["sql"].split(" ", 1)[0] not in TRANSACTION_CONTROL]
    assert "SUM" not in query["sql"].upper()
    assert not BudgetReservation.objects.exists()
    UserBudget.objects.create(user=user, monthly_usd=Decimal("0.5"))  # a limit of the user's own
    with pytest.raises(BudgetExceeded):
        reserve(user)


def test_the_month_follows_the_project_time_zone(settings: Any) -> None:
    settings.TIME_ZONE = "America/New_York"
    # 2026-12-01 03:00 UTC is still November 30 in New York.
    start = budgets.month_start(datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
    assert (start.year, start.month, start.day, start.hour) == (2026, 11, 1, 0)
    assert start.utcoffset() == timedelta(hours=-4)  # EDT on November 1
    assert budgets.next_month_start(start).date().isoformat() == "2026-12-01"


# -- during the reply ------------------------------------------------------------------------------------


def long_reply(deltas: int = 100, chars: int = 400) -> list[Any]:
    """``deltas`` deltas of ``chars`` characters (about chars / 4 tokens each), in separate batches."""
    items: list[Any] = []
    for _ in range(deltas):
        items += [TextDelta("x" * chars), Pause(0.002)]
    return [*items, Counts(input_tokens=10, output_tokens=deltas * chars // 4), Finish()]


def assert_stopped_for_budget(chunks: list[dict[str, Any]], user: Any) -> None:
    error = next(chunk for chunk in chunks if chunk["type"] == "error")
    assert error["code"] == "budget_exceeded"
    assert "monthly budget" in error["errorText"]
    assert chunks[-1]["type"] == "finish"
    assert chunks[-1]["finishReason"] == "error"
    assert chunks[-1]["messageMetadata"]["status"] == "error"
    # $0.01 left buys ~6250 output tokens at $1.60 / M: about 63 of the 100 deltas of 100 tokens
    # (counted by their text: deltas that arrive together leave as one chunk).
    deltas = sum(len(chunk["delta"]) for chunk in chunks if chunk["type"] == "text-delta") // 400
    assert 55 <= deltas <= 70

    message = Message.objects.get(role="assistant")
    assert (message.status, message.error_code) == ("error", "budget_exceeded")
    row = Usage.objects.get(message=message)
    assert row.estimated
    assert row.output_tokens == len(message.content) // 4
    assert row.total_cost is not None and row.total_cost > d("0.0095")
    assert chunks[-1]["messageMetadata"]["cost"] == format(row.total_cost, "f")
    call = ScriptedProvider.calls[-1]
    deadline = time.monotonic() + 2
    while not call.closed_early and time.monotonic() < deadline:  # the worker thread closes it
        time.sleep(0.01)
    assert call.closed_early and not call.finished  # the upstream call was ended: no more tokens paid for


def test_a_reply_that_crosses_the_budget_is_stopped_and_saved(user: Any, limited: None) -> None:
    spend(user, "0.99")
    ScriptedProvider.enqueue(long_reply())
    reply = start_reply(user, ChatInput(None, "Write a lot", MODEL))
    assert reply.budget is not None and reply.budget.remaining == d("0.01")
    chunks = replies.chunks(reply)
    assert_stopped_for_budget(chunks, user)


def test_the_async_relay_stops_it_too(user: Any, limited: None) -> None:
    spend(user, "0.99")
    ScriptedProvider.enqueue(long_reply())
    reply = start_reply(user, ChatInput(None, "Write a lot", MODEL))

    async def collect() -> list[dict[str, Any]]:
        return await replies.achunks(reply)

    assert_stopped_for_budget(asyncio.run(collect()), user)


def test_the_stop_reaches_the_browser_through_the_api(user: Any, api: Any, limited: None) -> None:
    spend(user, "0.99")
    ScriptedProvider.enqueue(long_reply())
    chunks = chat(api).chunks
    assert next(c for c in chunks if c["type"] == "error")["code"] == "budget_exceeded"
    assert chat(api).status_code == 402  # and the next request is refused


def test_a_reply_within_budget_is_not_stopped(user: Any, limited: None) -> None:
    spend(user, "0.5")
    ScriptedProvider.enqueue(long_reply())  # ~$0.016
    reply = start_reply(user, ChatInput(None, "Write a lot", MODEL))
    chunks = replies.chunks(reply)
    assert chunks[-1]["finishReason"] == "stop"
    assert not any(chunk["type"] == "error" for chunk in chunks)


def test_an_unlimited_user_has_no_guard(user: Any, settings: Any) -> None:
    settings.STREAMING = priced_streaming()
    assert start_reply(user, ChatInput(None, "Hi", MODEL)).budget is None


def test_the_guard_knows_the_fallback_models_prices(settings: Any) -> None:
    settings.STREAMING = priced_streaming(
        FALLBACKS={MODEL: ["gemini:gemini-2.5-flash", "openai:no-such-model"]}
    )
    spec = app_settings.get_model(MODEL)
    assert spec is not None
    prices = budgets.reply_prices(spec, [ChatMessage("user", "x" * 4_000_000)], reasoning=False)  # ~1M
    # (the context's input, an output token, an input token: a tool loop's later calls have more input)
    assert prices.rates == {
        MODEL: (d("0.4"), d("0.0000016"), d("0.0000004")),
        "gemini:gemini-2.5-flash": (d("0.3"), d("0.0000025"), d("0.0000003")),
    }  # the unpriced fallback cannot be judged, so it is not stopped


def test_a_budgeted_reply_costs_the_same_queries_whatever_its_length(user: Any, limited: None) -> None:
    counts = []
    for tokens in (10, 1000):
        ScriptedProvider.enqueue(text_reply(tokens))
        with all_queries() as queries:  # (the save runs on the app's database threads)
            reply = start_reply(user, ChatInput(None, "Hi", MODEL))
            chunks = replies.chunks(reply)
        assert chunks[-1]["finishReason"] == "stop"
        counts.append(queries.work().kinds())
    assert counts[0] == counts[1]
    # The unbudgeted reply's 7 (tests/test_services.py); the user's turn (their row, locked), the price
    # overrides, the reservation and, at the save, its deletion (the budget read sums the month's spend
    # and reservations, in the one query an unbudgeted reply spends on finding no limit).
    assert counts[0] == {"SELECT": 4, "INSERT": 4, "UPDATE": 2, "DELETE": 1}, queries.kinds()


def test_the_guard_counts_every_model_call_of_a_tool_loop(user: Any, settings: Any, limited: None) -> None:
    settings.STREAMING = {**settings.STREAMING, "TOOLS": ["tests.example_tools.add"]}
    spend(user, "0.99")  # $0.01 left
    # The first call costs about $0.0096 (6,000 output tokens) and calls a tool: within the budget.
    first = long_reply(60)[:-2]
    first += [
        ToolCall("c1", "add", {"a": 1, "b": 2}, '{"a": 1, "b": 2}'),
        Counts(input_tokens=10, output_tokens=6000),
        Finish("tool-calls"),
    ]
    ScriptedProvider.enqueue(first)
    ScriptedProvider.enqueue(long_reply(20))  # alone, about $0.003: within what was left at the start

    chunks = replies.chunks(start_reply(user, ChatInput(None, "Write a lot, then add", MODEL)))

    assert [c["output"] for c in chunks if c["type"] == "tool-output-available"] == [3]
    error = next(chunk for chunk in chunks if chunk["type"] == "error")
    assert error["code"] == "budget_exceeded"  # the second call crossed, counting the first
    message = Message.objects.get(role="assistant")
    assert Usage.objects.filter(message=message).count() == 2
