"""Per-user monthly budgets: the limit, this month's spend, the 402 before a reply, the stop during one.

A user's limit is their ``UserBudget`` row when there is one (empty there means unlimited), else
``STREAMING['MONTHLY_BUDGET_USD']`` (None means unlimited). The month is the calendar month in the
project's ``TIME_ZONE``. Spend is the sum of the user's priced usage this month (estimated rows
included, unpriced ones cannot count).

During a reply nothing is queried: ``start_reply`` hands the relay a ``BudgetGuard`` holding the
budget left and the reply's unit prices, and the relay compares the reply's running cost estimate
(its context's tokens, plus about four characters per output token) with it as events arrive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import DecimalField, Exists, Subquery, Sum
from django.utils import timezone

from streaming.attempts import AttemptPlan
from streaming.conf import ModelSpec, app_settings
from streaming.costs import OverrideBook
from streaming.events import ReasoningDelta, TextDelta, Usage, estimate_tokens
from streaming.exceptions import BudgetExceeded
from streaming.models import Usage as UsageRow
from streaming.models import UserBudget
from streaming.pricing import COST_DECIMAL_PLACES, MILLION, cost_string
from streaming.providers.base import ChatMessage

_COST = DecimalField(max_digits=30, decimal_places=COST_DECIMAL_PLACES)


def month_start(now: datetime | None = None) -> datetime:
    """The start of the current budget month, in the project's time zone."""
    local = timezone.localtime(now)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(start: datetime) -> datetime:
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.replace(year=year, month=month)


def _limit_and_spend(user_id: Any, start: datetime) -> tuple[Decimal | None, Decimal]:
    """The user's monthly limit (None: unlimited) and priced spend since ``start``, in one query."""
    own = UserBudget.objects.filter(user_id=user_id)
    spend = (
        UsageRow.objects.filter(user_id=user_id, created_at__gte=start)
        .values("user_id")
        .annotate(spent=Sum("total_cost"))
        .values("spent")
    )
    row = (
        get_user_model()
        .objects.filter(pk=user_id)
        .values_list(
            Exists(own), Subquery(own.values("monthly_usd")[:1]), Subquery(spend, output_field=_COST)
        )
        .first()
    )
    has_own, own_limit, spent = row if row is not None else (False, None, None)
    limit = own_limit if has_own else app_settings.monthly_budget_usd
    return limit, Decimal(0) if spent is None else Decimal(spent)


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    limit: Decimal | None
    spent: Decimal
    period_start: datetime

    @property
    def remaining(self) -> Decimal | None:
        return None if self.limit is None else max(Decimal(0), self.limit - self.spent)

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.spent >= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": "USD",
            "period_start": self.period_start.isoformat(),
            "period_end": next_month_start(self.period_start).isoformat(),
            "limit": cost_string(self.limit),
            "spent": cost_string(self.spent),
            "remaining": cost_string(self.remaining),
        }


def budget_status(user_id: Any, now: datetime | None = None) -> BudgetStatus:
    """The user's budget this month: one query."""
    start = month_start(now)
    return BudgetStatus(*_limit_and_spend(user_id, start), start)


def check_budget(user_id: Any) -> Decimal | None:
    """The budget left this month (None: unlimited); BudgetExceeded (402) when none is left.

    One query. Without a project-wide budget it is a small one (does the user have a ``UserBudget``?),
    and only a user with a limit of their own pays a second, adding up this month's spend.
    """
    if app_settings.monthly_budget_usd is None:
        own = list(UserBudget.objects.filter(user_id=user_id).values_list("monthly_usd", flat=True)[:1])
        if not own or own[0] is None:
            return None
    status = budget_status(user_id)
    if status.exhausted:
        renews = next_month_start(status.period_start).date().isoformat()
        raise BudgetExceeded(
            f"You have used ${status.spent:.2f} of your ${status.limit:.2f} monthly budget. "
            f"It renews on {renews}."
        )
    return status.remaining


@dataclass(slots=True)
class BudgetGuard:
    """Stops a reply whose estimated cost would pass the budget left when it started. No I/O.

    ``rates`` maps each model the reply may be answered by (the model and its fallbacks) to the
    cost of the context's input and the cost of one output token.
    """

    remaining: Decimal
    rates: dict[str, tuple[Decimal, Decimal]]
    output_chars: int = 0
    reported_output: int = 0
    estimate: Decimal = field(default=Decimal(0))

    def crossed(self, items: Iterable[object], model_id: str) -> bool:
        """Take in a batch of events; True when the reply's estimated cost now passes the budget."""
        grew = False
        for item in items:
            if isinstance(item, (TextDelta, ReasoningDelta)):
                self.output_chars += len(item.text)
                grew = True
            elif isinstance(item, Usage):
                self.reported_output = max(self.reported_output, item.output_tokens)
        rates = self.rates.get(model_id)
        if not grew or rates is None:
            return False
        input_cost, per_output_token = rates
        output_tokens = max(estimate_tokens_of(self.output_chars), self.reported_output)
        self.estimate = input_cost + output_tokens * per_output_token
        return self.estimate > self.remaining


def estimate_tokens_of(chars: int) -> int:
    return 0 if chars <= 0 else max(1, (chars + 3) // 4)


def guard_for(
    remaining: Decimal | None, spec: ModelSpec, context: Sequence[ChatMessage]
) -> BudgetGuard | None:
    """The guard of a reply with ``remaining`` budget left: one query (the overrides), none if unlimited."""
    if remaining is None:
        return None
    candidates = AttemptPlan(spec).candidates
    book = OverrideBook((c.provider, c.model) for c in candidates)
    probe = Usage(input_tokens=sum(estimate_tokens(m.content) for m in context), output_tokens=int(MILLION))
    now = timezone.now()
    rates: dict[str, tuple[Decimal, Decimal]] = {}
    for candidate in candidates:
        price = book.price(probe, candidate.provider, candidate.model, now)
        if price.input_cost is not None and price.output_cost is not None:
            rates[candidate.id] = (price.input_cost, price.output_cost / MILLION)
    return BudgetGuard(remaining, rates) if rates else None
