"""The admin cost report's figures: spend per day, spend and tokens by model, provider and user, time to
first token and error rate by model, and one user's spend and conversations.

Every figure is an aggregate computed by the database, grouped by day, model, user or conversation, so a
page runs the same few queries whether the period holds ten usage rows or ten million. Percentiles of time
to first token come from a histogram the database counts (``ttft_histogram``), the same on SQLite and
PostgreSQL, and are read off in Python.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Sum, When
from django.db.models.functions import TruncDate

from streaming.cost_charts import DayChart, day_chart, share
from streaming.cost_period import Period
from streaming.models import Message, Usage
from streaming.templatetags.streaming_costs import percent

TOP_ROWS = 50  # users, or a user's conversations, listed by spend

#: Time to first token is counted in buckets of two significant digits (exact below 100 ms): at most a few
#: hundred rows per model whatever the traffic, and percentiles within 5% of the exact value.
TTFT_STEPS = ((100, 1), (1_000, 10), (10_000, 100), (100_000, 1_000))
TTFT_LARGEST_STEP = 10_000


def totals() -> dict[str, Any]:
    """The aggregates of a group of usage rows."""
    return {
        "cost": Sum("total_cost"),
        "requests": Count("id"),
        "input_tokens": Sum("input_tokens"),
        "output_tokens": Sum("output_tokens"),
        "unpriced": Count("id", filter=Q(total_cost__isnull=True)),
    }


def link(base: str, **params: Any) -> str:
    return f"{base}?{urlencode({k: v for k, v in params.items() if v is not None})}"


def rows(queryset: QuerySet[Any], keys: list[str], limit: int | None = None) -> list[dict[str, Any]]:
    """``totals()`` per group of ``keys``, the largest spend first."""
    grouped = queryset.values(*keys).annotate(**totals()).order_by(F("cost").desc(nulls_last=True), *keys)
    return [dict(row) for row in (grouped[:limit] if limit else grouped)]


def add_shares(found: list[dict[str, Any]], *names: str) -> None:
    """``<name>_share``: each row's bar length, as a percentage of the largest value of any of ``names``."""
    top = max((row[name] or 0 for row in found for name in names), default=0)
    for row in found:
        for name in names:
            row[f"{name}_share"] = share(row[name], top)


def sum_rows(found: list[dict[str, Any]]) -> dict[str, Any]:
    """What the database's SUM would give over the same rows (NULL when no cost was priced)."""
    costs = [row["cost"] for row in found if row["cost"] is not None]
    summed = {name: sum(row[name] or 0 for row in found) for name in totals() if name != "cost"}
    return {**summed, "cost": sum(costs, Decimal(0)) if costs else None}


def spend_per_day(usage: QuerySet[Usage], period: Period) -> DayChart:
    per_day = usage.annotate(day=TruncDate("created_at")).values("day").annotate(**totals()).order_by()
    amounts: dict[date, tuple[Decimal, int]] = {}
    for found in per_day:
        row: dict[str, Any] = dict(found)
        amounts[row["day"]] = (row["cost"] or Decimal(0), row["requests"])
    return day_chart(period.days, amounts)


def ttft_bucket() -> Case:
    """``ttft_ms`` rounded to two significant digits, in SQL that SQLite and PostgreSQL agree on."""
    whens = [When(ttft_ms__lt=100, then=F("ttft_ms"))]
    for below, step in TTFT_STEPS[1:]:
        whens.append(When(ttft_ms__lt=below, then=(F("ttft_ms") + step // 2) / step * step))
    largest = (F("ttft_ms") + TTFT_LARGEST_STEP // 2) / TTFT_LARGEST_STEP * TTFT_LARGEST_STEP
    return Case(*whens, default=largest, output_field=IntegerField())


def ttft_histogram(usage: QuerySet[Usage]) -> dict[str, list[tuple[int, int]]]:
    """``{"provider:model": [(milliseconds, calls), ...]}``, ascending: one bounded query."""
    counted = (
        usage.filter(ttft_ms__isnull=False)
        .values("provider", "model", ms=ttft_bucket())
        .annotate(calls=Count("id"))
        .order_by("provider", "model", "ms")
    )
    histogram: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for row in counted:
        histogram[f"{row['provider']}:{row['model']}"].append((row["ms"], row["calls"]))
    return histogram


def percentile(histogram: list[tuple[int, int]], fraction: float) -> int | None:
    """The nearest-rank percentile: the smallest value with at least ``fraction`` of the calls at or below."""
    count = sum(calls for _, calls in histogram)
    if not count:
        return None
    rank = max(1, math.ceil(fraction * count))
    seen = 0
    for value, calls in histogram:
        seen += calls
        if seen >= rank:
            return value
    return histogram[-1][0]


def first_token_times(usage: QuerySet[Usage]) -> list[dict[str, Any]]:
    """p50 and p95 time to first token per model, slowest p95 first."""
    found: list[dict[str, Any]] = [
        {"model": model, "calls": sum(n for _, n in counts), "p50": percentile(counts, 0.5),
         "p95": percentile(counts, 0.95)}
        for model, counts in ttft_histogram(usage).items()
    ]  # fmt: skip
    found.sort(key=lambda row: (-(row["p95"] or 0), row["model"]))
    add_shares(found, "p50", "p95")
    return found


def error_rates(replies: QuerySet[Message]) -> list[dict[str, Any]]:
    """Assistant replies that ended in ``error`` per model, out of all that ended, highest rate first."""
    counted = (
        replies.filter(role=Message.Role.ASSISTANT)
        .exclude(status=Message.Status.STREAMING)
        .values("model")
        .annotate(replies=Count("id"), errors=Count("id", filter=Q(status=Message.Status.ERROR)))
        .order_by()
    )
    found = [{**row, "rate": row["errors"] / row["replies"], "label": percent(row["errors"], row["replies"])}
             for row in counted]  # fmt: skip
    found.sort(key=lambda row: (-row["rate"], -row["replies"], row["model"]))
    add_shares(found, "rate")
    return found


@dataclass(frozen=True, slots=True)
class Scope:
    """The rows a report covers: a period, and optionally one user."""

    period: Period
    user_id: int | None = None

    def usage(self) -> QuerySet[Usage]:
        found = Usage.objects.filter(created_at__gte=self.period.start, created_at__lt=self.period.end)
        return found if self.user_id is None else found.filter(user_id=self.user_id)

    def replies(self) -> QuerySet[Message]:
        found = Message.objects.filter(created_at__gte=self.period.start, created_at__lt=self.period.end)
        return found if self.user_id is None else found.filter(conversation__owner_id=self.user_id)


def model_figures(scope: Scope, changelist_url: str) -> dict[str, Any]:
    """Spend per day, and spend, tokens, first-token times and error rates by model: four queries."""
    usage = scope.usage()
    window = scope.period.usage_filter()
    who = {} if scope.user_id is None else {"user__id__exact": scope.user_id}
    by_model = rows(usage, ["provider", "model"])
    for row in by_model:
        row["link"] = link(changelist_url, provider=row["provider"], model=row["model"], **who, **window)
    add_shares(by_model, "cost")
    tokens = sorted(by_model, key=lambda row: (-(row["input_tokens"] + row["output_tokens"]), row["model"]))
    tokens = [dict(row) for row in tokens]
    add_shares(tokens, "input_tokens", "output_tokens")
    return {
        "chart": spend_per_day(usage, scope.period),
        "totals": sum_rows(by_model),
        "by_model": by_model,
        "tokens": tokens,
        "first_token": first_token_times(usage),
        "errors": error_rates(scope.replies()),
        "period_link": link(changelist_url, **who, **window),
        "unpriced_link": link(changelist_url, price="unpriced", **who, **window),
    }


def by_provider(by_model: list[dict[str, Any]], changelist_url: str, period: Period) -> list[dict[str, Any]]:
    """The model rows summed per provider (no query of its own)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in by_model:
        groups[row["provider"]].append(row)
    found = [
        {"provider": provider, **sum_rows(group),
         "link": link(changelist_url, provider=provider, **period.usage_filter())}
        for provider, group in groups.items()
    ]  # fmt: skip
    found.sort(key=lambda row: (row["cost"] is None, -(row["cost"] or 0), row["provider"]))
    add_shares(found, "cost")
    return found


def by_user(scope: Scope, changelist_url: str, user_page: Callable[[Any], str]) -> list[dict[str, Any]]:
    """The top spenders, each with a link to their own page (``user_page(id)``): one query."""
    username = f"user__{get_user_model().USERNAME_FIELD}"
    found = rows(scope.usage(), ["user_id", username], limit=TOP_ROWS)
    for row in found:
        row["username"] = row[username] or "(deleted user)"
        who = {"user__id__exact": row["user_id"]} if row["user_id"] else {"user__isnull": "True"}
        row["link"] = link(changelist_url, **who, **scope.period.usage_filter())
        if row["user_id"]:
            row["page"] = f"{user_page(row['user_id'])}?{scope.period.query()}"
    add_shares(found, "cost")
    return found


def report(period: Period, changelist_url: str, user_page: Callable[[Any], str]) -> dict[str, Any]:
    """The whole report's figures: five aggregate queries."""
    figures = model_figures(Scope(period), changelist_url)
    return {
        **figures,
        "by_provider": by_provider(figures["by_model"], changelist_url, period),
        "by_user": by_user(Scope(period), changelist_url, user_page),
        "top_rows": TOP_ROWS,
    }


def conversations(scope: Scope, conversation_page: Callable[[Any], str]) -> list[dict[str, Any]]:
    """A user's conversations by their spend in the period: one query. Deleted ones keep their cost."""
    found = rows(scope.usage(), ["conversation_id", "conversation__title"], limit=TOP_ROWS)
    for row in found:
        row["title"] = row["conversation__title"] or ("(untitled)" if row["conversation_id"] else None)
        if row["conversation_id"]:
            row["page"] = conversation_page(row["conversation_id"])
    add_shares(found, "cost")
    return found


def user_report(
    period: Period, user_id: int, changelist_url: str, conversation_page: Callable[[Any], str]
) -> dict[str, Any]:
    """One user's figures: five aggregate queries."""
    scope = Scope(period, user_id)
    return {
        **model_figures(scope, changelist_url),
        "conversations": conversations(scope, conversation_page),
        "top_rows": TOP_ROWS,
    }
