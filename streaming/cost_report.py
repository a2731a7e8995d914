"""The admin cost report: spend per day as a server-drawn SVG bar chart, and spend by model, provider, user.

Every figure is an aggregate computed in the database, so the page runs the same handful of queries
whether the period holds ten usage rows or ten million.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from streaming.models import Usage
from streaming.pricing import UNPRICED

PERIODS = (7, 30, 90)
DEFAULT_PERIOD = 30
TOP_USERS = 50

CHART_WIDTH = 760
CHART_HEIGHT = 260
PLOT_LEFT = 64  # room for the y-axis labels
PLOT_TOP = 12
PLOT_BOTTOM = 28  # room for the x-axis labels


def period_days(value: str | None) -> int:
    try:
        days = int(value or DEFAULT_PERIOD)
    except ValueError:
        return DEFAULT_PERIOD
    return days if days in PERIODS else DEFAULT_PERIOD


def _totals() -> dict[str, Any]:
    return {
        "cost": Sum("total_cost"),
        "requests": Count("id"),
        "input_tokens": Sum("input_tokens"),
        "output_tokens": Sum("output_tokens"),
        "unpriced": Count("id", filter=Q(total_cost__isnull=True)),
    }


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    cost: Decimal
    requests: int


@dataclass(slots=True)
class Chart:
    """Geometry of the spend-per-day chart, in SVG user units; the template draws it."""

    bars: list[Bar]
    y_ticks: list[tuple[float, str]]
    x_labels: list[tuple[float, str]]
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    plot_left: int = PLOT_LEFT
    plot_right: int = CHART_WIDTH - 8
    baseline: float = CHART_HEIGHT - PLOT_BOTTOM
    empty: bool = field(default=False)


def nice_ceiling(value: Decimal) -> Decimal:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= value (1 for nothing spent)."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for _ in range(2):
        for step in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5)):
            candidate = step.scaleb(exponent)
            if candidate >= value:
                return candidate
        exponent += 1
    return Decimal(10).scaleb(exponent)


def money_label(amount: Decimal) -> str:
    if amount == 0:
        return "$0"
    if amount >= 100:
        return f"${amount:,.0f}"
    if amount >= 1:
        return f"${amount:,.2f}".rstrip("0").rstrip(".")
    return f"${amount.normalize():f}"


def spend_chart(days: list[date], spend: dict[date, tuple[Decimal, int]]) -> Chart:
    """Bars for ``days`` (oldest first), scaled to a round maximum with five gridlines."""
    top = nice_ceiling(max((cost for cost, _ in spend.values()), default=Decimal(0)))
    plot_width = CHART_WIDTH - 8 - PLOT_LEFT
    plot_height = CHART_HEIGHT - PLOT_BOTTOM - PLOT_TOP
    baseline = CHART_HEIGHT - PLOT_BOTTOM
    band = plot_width / len(days)
    bars = []
    for index, day in enumerate(days):
        cost, requests = spend.get(day, (Decimal(0), 0))
        height = round(float(cost / top) * plot_height, 2)
        x = round(PLOT_LEFT + index * band + band * 0.12, 2)
        bars.append(Bar(x, round(baseline - height, 2), round(band * 0.76, 2), height, day, cost, requests))
    y_ticks = [
        (round(baseline - plot_height * step / 4, 2), money_label(top * step / 4)) for step in range(5)
    ]
    every = max(1, round(len(days) / 8))
    x_labels = [
        (round(PLOT_LEFT + (index + 0.5) * band, 2), f"{day:%b} {day.day}")
        for index, day in enumerate(days)
        if (len(days) - 1 - index) % every == 0
    ]
    return Chart(bars, y_ticks, x_labels, empty=not spend)


def _filter_link(base: str, **params: Any) -> str:
    return f"{base}?{urlencode({k: v for k, v in params.items() if v is not None})}"


def _rows(queryset: QuerySet[Usage], keys: list[str], limit: int | None = None) -> list[dict[str, Any]]:
    rows = queryset.values(*keys).annotate(**_totals()).order_by(F("cost").desc(nulls_last=True), *keys)
    found: list[dict[str, Any]] = [dict(row) for row in (rows[:limit] if limit else rows)]
    return found


def report(days: int, changelist_url: str, now: datetime | None = None) -> dict[str, Any]:
    """The report's context: five aggregate queries, whatever the number of rows."""
    today = timezone.localdate(now)
    first_day = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(first_day, datetime.min.time()))
    end = timezone.make_aware(datetime.combine(today + timedelta(days=1), datetime.min.time()))
    period = Usage.objects.filter(created_at__gte=start, created_at__lt=end)
    window = {"created_at__gte": str(start), "created_at__lt": str(end)}

    per_day = period.annotate(day=TruncDate("created_at")).values("day").annotate(**_totals()).order_by()
    spend: dict[date, tuple[Decimal, int]] = {}
    for day_row in per_day:
        values: dict[str, Any] = dict(day_row)
        spend[values["day"]] = (values["cost"] or Decimal(0), values["requests"])
    by_model = _rows(period, ["provider", "model"])
    by_provider = _rows(period, ["provider"])
    username = f"user__{get_user_model().USERNAME_FIELD}"
    by_user = _rows(period, ["user_id", username], limit=TOP_USERS)
    for row in by_model:
        row["link"] = _filter_link(changelist_url, provider=row["provider"], model=row["model"], **window)
    for row in by_provider:
        row["link"] = _filter_link(changelist_url, provider=row["provider"], **window)
    for row in by_user:
        row["username"] = row[username] or "(deleted user)"
        who = {"user__id__exact": row["user_id"]} if row["user_id"] else {"user__isnull": "True"}
        row["link"] = _filter_link(changelist_url, **who, **window)
    return {
        "days": days,
        "periods": PERIODS,
        "start": first_day,
        "end": today,
        "chart": spend_chart([first_day + timedelta(days=i) for i in range(days)], spend),
        "totals": period.aggregate(**_totals()),
        "period_link": _filter_link(changelist_url, **window),
        "unpriced_link": _filter_link(changelist_url, price=UNPRICED, **window),
        "by_model": by_model,
        "by_provider": by_provider,
        "by_user": by_user,
        "top_users": TOP_USERS,
    }
