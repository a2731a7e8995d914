"""Geometry of the cost report's charts, computed here and drawn by the templates.

Positions are percentages of the plot, so the browser stretches the bars to any width while the labels stay
HTML or unscaled SVG text: a chart read on a phone has the same 11-12 px labels as on a desktop, and no label
can fall outside the drawing. Every chart comes with its numbers in a table; the bars add no information.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from streaming.templatetags.streaming_costs import usd

WIDE_LABELS = 8  # day labels under a chart on a desktop...
NARROW_LABELS = 4  # ...and on a phone (the template hides the others)
TICKS = 4  # gridlines above the baseline


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


def share(value: Decimal | int | float | None, top: Decimal | int | float) -> float:
    """``value`` as a percentage of ``top`` for a bar's length; a non-zero value stays visible."""
    if not value or not top:
        return 0.0
    return max(0.5, round(float(value) / float(top) * 100, 2))


@dataclass(frozen=True, slots=True)
class DayBar:
    """One day's bar, in percent of the plot: ``x`` and ``width`` across, ``y`` and ``height`` down."""

    day: date
    amount: Decimal
    requests: int
    x: float
    width: float
    y: float
    height: float


@dataclass(frozen=True, slots=True)
class DayLabel:
    """A date under the chart at ``x`` percent; ``anchor`` keeps the first and last inside the drawing."""

    x: float
    text: str
    anchor: str
    wide: bool
    narrow: bool


@dataclass(frozen=True, slots=True)
class DayChart:
    bars: list[DayBar]
    ticks: list[str]  # the gridlines' labels, top first
    labels: list[DayLabel]
    empty: bool


def _label_days(count: int, most: int) -> set[int]:
    """Indexes of the days to label, at most ``most``, always the last (today, usually) among them."""
    every = max(1, math.ceil(count / most))
    return {index for index in range(count) if (count - 1 - index) % every == 0}


def day_chart(days: list[date], amounts: dict[date, tuple[Decimal, int]]) -> DayChart:
    """Bars for ``days`` (oldest first) scaled to a round maximum, with ``amounts[day] = (usd, requests)``."""
    top = nice_ceiling(max((amount for amount, _ in amounts.values()), default=Decimal(0)))
    band = 100 / len(days)
    bars = []
    for index, day in enumerate(days):
        amount, requests = amounts.get(day, (Decimal(0), 0))
        height = share(amount, top)
        bars.append(
            DayBar(day, amount, requests, round(index * band + band * 0.15, 3), round(band * 0.7, 3),
                   round(100 - height, 3), height)
        )  # fmt: skip
    wide, narrow = _label_days(len(days), WIDE_LABELS), _label_days(len(days), NARROW_LABELS)
    labels = [_day_label(i, days, band, i in wide, i in narrow) for i in sorted(wide | narrow)]
    ticks = [usd(top * step / TICKS) for step in range(TICKS, -1, -1)]
    return DayChart(bars, ticks, labels, empty=not any(amount for amount, _ in amounts.values()))


def _day_label(index: int, days: list[date], band: float, wide: bool, narrow: bool) -> DayLabel:
    day = days[index]
    text = f"{day:%b} {day.day}"
    if len(days) > 1 and index == 0:
        return DayLabel(0, text, "start", wide, narrow)
    if len(days) > 1 and index == len(days) - 1:
        return DayLabel(100, text, "end", wide, narrow)
    return DayLabel(round((index + 0.5) * band, 3), text, "middle", wide, narrow)
