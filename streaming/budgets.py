"""Per-user monthly budgets: the limit, this month's spend, the 402 before a reply, the stop during one.

A user's limit is their ``UserBudget`` row when there is one (empty there means unlimited), else
``STREAMING['MONTHLY_BUDGET_USD']`` (None means unlimited). The month is the calendar month in the
project's ``TIME_ZONE``. Spend is the sum of the user's priced usage this month (estimated rows
included, unpriced ones cannot count).

A budget is a hard limit, however many replies start at once: each reply reserves the most it can
cost when it starts (``reserve``, in the transaction that stores it, one user's starts taking turns),
and its reservation turns into its actual cost in the transaction that writes its usage row
(``settle``). What is left is the limit less the spend and the reservations of replies streaming now.
During a reply nothing is queried: ``reserve`` hands the relay a ``BudgetGuard`` holding the budget
left and the reply's unit prices, and the relay compares the reply's running cost estimate (its
context's tokens, plus about four characters per output token) with it as events arrive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import DecimalField, Exists, Subquery, Sum
from django.utils import timezone

from streaming.attempts import AttemptPlan
from streaming.conf import ModelSpec, app_settings
from streaming.costs import OverrideBook
from streaming.events import ReasoningDelta, TextDelta, ToolCallDelta, Usage, estimate_tokens
from streaming.exceptions import BudgetExceeded
from streaming.models import BudgetReservation, UserBudget
from streaming.models import Usage as UsageRow
from streaming.pricing import COST_DECIMAL_PLACES, MILLION, cost_string
from streaming.providers import get_provider
from streaming.providers.base import ChatMessage
from streaming.templatetags.streaming_costs import usd

_COST = DecimalField(max_digits=30, decimal_places=COST_DECIMAL_PLACES)

#: The output tokens a reply is taken to reach at most when its provider's ``OPTIONS`` set no limit
#: (``max_output_tokens``, or Anthropic's ``max_tokens``): what its reservation covers.
DEFAULT_OUTPUT_TOKENS = 16_384
#: A reservation stops counting this long after its reply started, whatever became of the reply: a
#: backstop for one that was never settled (a reply is saved, and settled, well before).
RESERVATION_LIFETIME = timedelta(hours=1)


def month_start(now: datetime | None = None) -> datetime:
    """The start of the current budget month, in the project's time zone."""
    local = timezone.localtime(now)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(start: datetime) -> datetime:
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.replace(year=year, month=month)


def _budget_row(user_id: Any, start: datetime, now: datetime) -> tuple[Decimal | None, Decimal, Decimal]:
    """The user's monthly limit (None: unlimited), priced spend since ``start`` and what the replies
    streaming now hold, in one statement: one snapshot, so that a reply saved meanwhile (its usage row
    written and its reservation deleted together) is counted once, never twice or not at all."""
    own = UserBudget.objects.filter(user_id=user_id)
    spend = (
        UsageRow.objects.filter(user_id=user_id, created_at__gte=start)
        .values("user_id")
        .annotate(spent=Sum("total_cost"))
        .values("spent")
    )
    held = (
        BudgetReservation.objects.filter(user_id=user_id, expires_at__gt=now)
        .values("user_id")
        .annotate(held=Sum("amount"))
        .values("held")
    )
    row = (
        get_user_model()
        .objects.filter(pk=user_id)
        .values_list(
            Exists(own),
            Subquery(own.values("monthly_usd")[:1]),
            Subquery(spend, output_field=_COST),
            Subquery(held, output_field=_COST),
        )
        .first()
    )
    has_own, own_limit, spent, reserved = row if row is not None else (False, None, None, None)
    limit = own_limit if has_own else app_settings.monthly_budget_usd
    return limit, Decimal(spent or 0), Decimal(reserved or 0)


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A user's budget this month. ``reserved`` is what the replies streaming now may still cost at
    most: it is not spent yet, but not left either."""

    limit: Decimal | None
    spent: Decimal
    reserved: Decimal
    period_start: datetime

    @property
    def remaining(self) -> Decimal | None:
        return None if self.limit is None else max(Decimal(0), self.limit - self.spent - self.reserved)

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": "USD",
            "period_start": self.period_start.isoformat(),
            "period_end": next_month_start(self.period_start).isoformat(),
            "limit": cost_string(self.limit),
            "spent": cost_string(self.spent),
            "reserved": cost_string(self.reserved),
            "remaining": cost_string(self.remaining),
        }

    def refusal(self) -> BudgetExceeded:
        """The 402 of a reply that what is left cannot pay for."""
        renews = next_month_start(self.period_start).date().isoformat()
        assert self.limit is not None
        if self.spent >= self.limit:
            return BudgetExceeded(
                f"You have used {usd(self.spent)} of your {usd(self.limit)} monthly budget. "
                f"It renews on {renews}."
            )
        held = f", and your replies streaming now hold {usd(self.reserved)}" if self.reserved else ""
        return BudgetExceeded(
            f"You have used {usd(self.spent)} of your {usd(self.limit)} monthly budget{held}: "
            f"what is left cannot pay for another reply. It renews on {renews}."
        )


def budget_status(user_id: Any, now: datetime | None = None) -> BudgetStatus:
    """The user's budget this month: one query."""
    now = now or timezone.now()
    start = month_start(now)
    return BudgetStatus(*_budget_row(user_id, start, now), start)


def reserve(
    user_id: Any,
    message_id: Any,
    spec: ModelSpec,
    context: Sequence[ChatMessage],
    *,
    reasoning: bool,
    tools: bool = False,
) -> BudgetGuard | None:
    """Hold the most a reply that starts now can cost against its user's budget; the guard that stops
    it, while it streams, at the budget left; None for a user without a limit.

    Call it in the transaction that stores the reply: the reservation is written with it, and the
    reply starts of one user take turns from here to its commit, so that each sees what the others
    hold. The reservation is the reply's worst case (its input, and its provider's output limit at
    the price of the dearest model that may answer; with tools, that of ``MAX_STEPS`` model
    calls), or what is left when that is less: the guard stops the reply there. ``BudgetExceeded``
    (402) when what is left cannot pay for the input.
    ``saving.save_reply`` deletes the reservation when it writes the reply's usage row.
    """
    if app_settings.monthly_budget_usd is None and not _has_own_limit(user_id):
        return None  # (one small query, for the users of a site without budgets)
    _take_turns(user_id)
    now = timezone.now()
    status = budget_status(user_id, now)
    if status.limit is None:
        return None
    prices = reply_prices(spec, context, reasoning=reasoning)
    left = status.limit - status.spent - status.reserved
    if left <= prices.least:
        raise status.refusal()
    if not prices.rates:
        return None  # an unpriced model: nothing to hold, nothing to judge it by
    worst = prices.worst * (app_settings.max_steps if tools else 1)
    BudgetReservation.objects.create(
        user_id=user_id,
        message_id=message_id,
        amount=min(worst, left),
        created_at=now,
        expires_at=now + RESERVATION_LIFETIME,
    )
    return BudgetGuard(left, prices.rates)


def settle(message_id: Any) -> None:
    """The reply's usage row is being written (in this transaction): its reservation gives way to it."""
    BudgetReservation.objects.filter(message_id=message_id).delete()


def _has_own_limit(user_id: Any) -> bool:
    own = UserBudget.objects.filter(user_id=user_id).values_list("monthly_usd", flat=True)[:1]
    return any(limit is not None for limit in own)


def _take_turns(user_id: Any) -> None:
    """Lock the user's row until the transaction ends: another reply start of theirs waits here.

    A statement of its own, before the budget is read: under READ COMMITTED a statement sees what was
    committed when it began, so the read must begin once the lock is held. ``FOR NO KEY UPDATE`` on
    PostgreSQL, which rows that merely point at the user (usage, conversations) do not wait for. On
    SQLite (no row locks) the reply starts of a process take turns on ``write_transaction``'s lock,
    and processes on the database's own write lock (``transaction_mode`` IMMEDIATE).
    """
    users = get_user_model().objects.filter(pk=user_id)
    no_key = connection.features.has_select_for_no_key_update
    list(users.select_for_update(no_key=no_key).values_list("pk", flat=True))


@dataclass(slots=True)
class BudgetGuard:
    """Stops a reply whose estimated cost would pass the budget left for it when it started (the limit
    less the spend and what the other replies streaming then held). No I/O.

    ``rates`` maps each model the reply may be answered by (the model and its fallbacks) to the cost
    of the context's input, of one output token and of one input token. A reply of several model calls
    (tools) counts each: what the calls before this one came to, then this one's input and output.
    """

    remaining: Decimal
    rates: dict[str, tuple[Decimal, Decimal, Decimal]]
    output_chars: int = 0
    reported_output: int = 0
    estimate: Decimal = field(default=Decimal(0))
    before: Decimal = field(default=Decimal(0))  # the estimated cost of the reply's earlier model calls
    input_tokens: int | None = None  # this call's context, after the first call (None: the first's)

    def crossed(self, items: Iterable[object], model_id: str) -> bool:
        """Take in a batch of events; True when the reply's estimated cost now passes the budget."""
        grew = False
        for item in items:
            if isinstance(item, (TextDelta, ReasoningDelta, ToolCallDelta)):
                self.output_chars += len(item.text)
                grew = True
            elif isinstance(item, Usage):
                self.reported_output = max(self.reported_output, item.output_tokens)
        rates = self.rates.get(model_id)
        if not grew or rates is None:
            return False
        input_cost, per_output_token, per_input_token = rates
        if self.input_tokens is not None:
            input_cost = self.input_tokens * per_input_token
        output_tokens = max(estimate_tokens_of(self.output_chars), self.reported_output)
        self.estimate = self.before + input_cost + output_tokens * per_output_token
        return self.estimate > self.remaining

    def next_call(self, input_tokens: int) -> None:
        """The reply calls the model again, with a context of about ``input_tokens``."""
        self.before = self.estimate
        self.output_chars = self.reported_output = 0
        self.input_tokens = input_tokens


def estimate_tokens_of(chars: int) -> int:
    return 0 if chars <= 0 else max(1, (chars + 3) // 4)


@dataclass(frozen=True, slots=True)
class ReplyPrices:
    """What a reply may cost, whichever of its models (the one asked for and its fallbacks) answers.

    ``rates`` maps each priced model to the cost of the context's input and of one output token;
    ``worst`` is the most the reply can cost, ``least`` the least (its input, at the cheapest).
    """

    rates: dict[str, tuple[Decimal, Decimal, Decimal]]
    worst: Decimal
    least: Decimal


def reply_prices(spec: ModelSpec, context: Sequence[ChatMessage], *, reasoning: bool) -> ReplyPrices:
    """The prices of a reply of ``spec`` to ``context``: one query (the price overrides)."""
    candidates = AttemptPlan(spec).candidates
    book = OverrideBook((c.provider, c.model) for c in candidates)
    probe = Usage(input_tokens=sum(estimate_tokens(m.content) for m in context), output_tokens=int(MILLION))
    per_input = Usage(input_tokens=int(MILLION))
    now = timezone.now()
    rates: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
    worst = Decimal(0)
    for candidate in candidates:
        price = book.price(probe, candidate.provider, candidate.model, now)
        if price.input_cost is None or price.output_cost is None:
            continue
        input_price = book.price(per_input, candidate.provider, candidate.model, now).input_cost or Decimal(0)
        input_cost, per_token = price.input_cost, price.output_cost / MILLION
        rates[candidate.id] = (input_cost, per_token, input_price / MILLION)
        worst = max(worst, input_cost + per_token * output_limit(candidate, reasoning=reasoning))
    least = min((rate[0] for rate in rates.values()), default=Decimal(0))
    return ReplyPrices(rates, worst, least)


def output_limit(spec: ModelSpec, *, reasoning: bool) -> int:
    """The most output tokens a reply of ``spec`` can bring: its provider's limit, else the default."""
    try:
        limit = get_provider(spec.provider).output_token_limit(reasoning and spec.reasoning)
    except KeyError:  # (a provider no longer configured)
        limit = None
    return limit or DEFAULT_OUTPUT_TOKENS
