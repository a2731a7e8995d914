"""Budgets are a hard limit: each reply reserves its worst-case cost when it starts, in the transaction
that stores it, and the reservation gives way to the reply's usage row when it is saved, however it
ended (a takeover of a dead process's reply included). Run on SQLite, and on PostgreSQL with
``DATABASE_URL``: threads that start replies at once, each on its own connection."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Sum
from django.utils import timezone

from streaming import budgets
from streaming.conf import app_settings
from streaming.exceptions import BudgetExceeded
from streaming.models import BudgetReservation, Message, Usage
from streaming.providers.anthropic import AnthropicProvider
from streaming.providers.base import ChatMessage
from streaming.services import ChatInput, start_reply
from streaming.upkeep import take_over_stale
from tests import replies
from tests.concurrency import at_once
from tests.costs import SCRIPTED, priced_streaming

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "openai:gpt-4.1-mini"  # $0.40 / M input, $1.60 / M output
MAX_OUTPUT = 1000  # the provider's configured limit: what a reply reserves beside its input


def budget_of(replies_worth: int, settings: Any, **extra: Any) -> Decimal:
    """Set a monthly budget of exactly ``replies_worth`` worst-case replies of ``MODEL`` to "Hello"."""
    openai = {**SCRIPTED, "OPTIONS": {"max_output_tokens": MAX_OUTPUT}}
    settings.STREAMING = priced_streaming(**extra)
    settings.STREAMING["PROVIDERS"] = {**settings.STREAMING["PROVIDERS"], "openai": openai}
    spec = app_settings.get_model(MODEL)
    assert spec is not None
    worst = budgets.reply_prices(spec, [ChatMessage("user", "Hello")], reasoning=False).worst
    assert worst > Decimal("0.0016")  # 1,000 output tokens and the input
    limit = (worst * replies_worth).quantize(Decimal("1E-10"))
    settings.STREAMING = {**settings.STREAMING, "MONTHLY_BUDGET_USD": str(limit)}
    return worst


def test_twenty_replies_at_once_start_only_as_many_as_the_budget_holds(user: Any, settings: Any) -> None:
    worst = budget_of(3, settings)
    started, refused = at_once(20, lambda: start_reply(user, ChatInput(None, "Hello", MODEL)))
    assert len(started) == 3, refused
    assert len(refused) == 17 and all(isinstance(exc, BudgetExceeded) for exc in refused), refused
    assert "streaming now hold" in str(refused[0])
    assert Message.objects.filter(status=Message.Status.STREAMING).count() == 3
    status = budgets.budget_status(user.pk)
    assert status.reserved == BudgetReservation.objects.aggregate(total=Sum("amount"))["total"]
    assert abs(status.reserved - 3 * worst) < Decimal("1E-9")
    assert status.spent == 0 and status.remaining is not None and status.remaining < Decimal("1E-9")

    for reply in started:
        assert replies.chunks(reply)[-1]["finishReason"] == "stop"
    replies.settle()
    status = budgets.budget_status(user.pk)
    assert not BudgetReservation.objects.exists()
    assert status.reserved == 0
    assert Usage.objects.count() == 3
    assert status.spent == Usage.objects.aggregate(total=Sum("total_cost"))["total"]
    assert status.spent < 3 * worst  # a short reply costs less than it reserved: the rest is free again
    replies.chunks(start_reply(user, ChatInput(None, "Hello", MODEL)))


def test_a_reply_reserves_its_worst_case_or_what_is_left(user: Any, settings: Any) -> None:
    worst = budget_of(3, settings)
    first = start_reply(user, ChatInput(None, "Hello", MODEL))
    [held] = BudgetReservation.objects.all()
    assert (held.user_id, str(held.message_id), held.amount) == (user.pk, first.message_id, worst)
    assert first.budget is not None and first.budget.remaining == 3 * worst
    settings.STREAMING = {**settings.STREAMING, "MONTHLY_BUDGET_USD": str(worst * Decimal("1.5"))}
    second = start_reply(user, ChatInput(None, "Hello", MODEL))  # half a reply is left: it holds that
    assert second.budget is not None and second.budget.remaining == worst / 2
    assert BudgetReservation.objects.get(message_id=second.message_id).amount == worst / 2
    with pytest.raises(BudgetExceeded):
        start_reply(user, ChatInput(None, "Hello", MODEL))


def test_the_budget_endpoint_counts_what_streaming_replies_hold(user: Any, api: Any, settings: Any) -> None:
    worst = budget_of(3, settings)
    response = api.post("/api/chat", {"message": "Hello", "model": MODEL}, content_type="application/json")
    assert response.status_code == 200
    status = api.get("/api/budget").json()
    assert Decimal(status["reserved"]) == worst
    assert Decimal(status["spent"]) == 0
    assert Decimal(status["remaining"]) == Decimal(status["limit"]) - worst
    b"".join(response.streaming_content)  # the reply streams to its end and is saved
    replies.settle()
    status = api.get("/api/budget").json()
    assert Decimal(status["reserved"]) == 0
    assert Decimal(status["remaining"]) == Decimal(status["limit"]) - Decimal(status["spent"])


def test_a_reply_taken_over_from_a_dead_process_gives_its_reservation_back(user: Any, settings: Any) -> None:
    budget_of(1, settings)
    reply = start_reply(user, ChatInput(None, "Hello", MODEL))  # never streamed: as if its process died
    with pytest.raises(BudgetExceeded):
        start_reply(user, ChatInput(None, "Hello", MODEL))
    Message.objects.filter(pk=reply.message_id).update(updated_at=timezone.now() - timedelta(minutes=10))
    assert take_over_stale(Message.objects.all()) == 1
    assert not BudgetReservation.objects.exists()
    assert Message.objects.get(pk=reply.message_id).status == Message.Status.INTERRUPTED
    replies.chunks(start_reply(user, ChatInput(None, "Hello", MODEL)))


def test_a_reservation_never_settled_expires(user: Any, settings: Any) -> None:
    budget_of(1, settings)
    reply = start_reply(user, ChatInput(None, "Hello", MODEL))
    Message.objects.filter(pk=reply.message_id).delete()  # gone while its process was dead: no takeover
    assert budgets.budget_status(user.pk).reserved > 0
    later = timezone.now() + budgets.RESERVATION_LIFETIME + timedelta(seconds=1)
    assert budgets.budget_status(user.pk, later).reserved == 0
    BudgetReservation.objects.update(expires_at=timezone.now())
    replies.chunks(start_reply(user, ChatInput(None, "Hello", MODEL)))


def test_an_unpriced_model_reserves_nothing_but_an_exhausted_budget_still_refuses(
    user: Any, settings: Any
) -> None:
    budget_of(1, settings)
    replies.chunks(start_reply(user, ChatInput(None, "Hello", "openai:no-such-model")))
    assert not BudgetReservation.objects.exists()
    settings.STREAMING = {**settings.STREAMING, "MONTHLY_BUDGET_USD": 0}
    with pytest.raises(BudgetExceeded):
        start_reply(user, ChatInput(None, "Hello", "openai:no-such-model"))


def test_the_worst_case_takes_the_providers_output_limit(settings: Any) -> None:
    budget_of(1, settings, FALLBACKS={MODEL: ["anthropic:claude-haiku-4-5"]})
    spec = app_settings.get_model(MODEL)
    assert spec is not None
    assert budgets.output_limit(spec, reasoning=False) == MAX_OUTPUT
    haiku = app_settings.get_model("anthropic:claude-haiku-4-5")
    assert haiku is not None
    assert budgets.output_limit(haiku, reasoning=False) == budgets.DEFAULT_OUTPUT_TOKENS  # none configured
    # The fallback may answer: its 16,384 tokens at $5 / M are the reply's worst case.
    prices = budgets.reply_prices(spec, [ChatMessage("user", "Hello")], reasoning=False)
    assert prices.worst > Decimal("0.08")
    assert AnthropicProvider("anthropic", {}).output_token_limit(reasoning=False) == 4096
    assert AnthropicProvider("anthropic", {"max_tokens": 1000}).output_token_limit(reasoning=True) == 3048
