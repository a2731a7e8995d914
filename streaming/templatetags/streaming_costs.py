"""How the admin writes money, token counts, durations and rates: one function each, used by every admin
page (lists, details, the cost report, its charts' labels and tables), so that the same cost never reads
"$0.00" in one place and "$0.0019" in another.

Costs are stored with ten decimal places; people read cents for a dollar or more, and three significant
digits below a dollar (never fewer than two decimals), so a small cost never rounds to zero.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django import template

register = template.Library()

SMALLEST = Decimal("1E-10")  # the stored precision: a smaller non-zero amount is written "<$0.0000000001"


@register.filter
def usd(amount: Decimal | int | str | None, missing: str = "—") -> str:
    """``$1,234.57``, ``$0.40``, ``$0.485``, ``$0.0019``; ``missing`` for no amount (nothing priced)."""
    if amount is None or amount == "":
        return missing
    value = Decimal(amount)
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value == 0:
        return "$0.00"
    if value < SMALLEST:
        return f"{sign}<${SMALLEST:.10f}"
    places = 2 if value >= 1 else max(2, 2 - value.adjusted())
    text = f"{value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP):,.{places}f}"
    if places > 2:  # 0.400 -> 0.40: significant digits, not padding
        whole, fraction = text.split(".")
        text = f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"
    return f"{sign}${text}"


@register.filter
def tokens(count: int | None) -> str:
    """A count with thousands separators; an empty sum is 0."""
    return f"{count or 0:,}"


@register.filter
def ms(value: int | float | None) -> str:
    """A duration in milliseconds, ``1,250 ms``; ``—`` when nothing was timed."""
    return "—" if value is None else f"{round(value):,} ms"


def percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a percentage with enough digits to tell a rare error from none."""
    if not whole:
        return "—"
    if not part:
        return "0%"
    value = Decimal(part) * 100 / Decimal(whole)
    places = 1 if value >= 1 else max(1, 1 - value.adjusted())
    text = f"{value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP):.{places}f}"
    return text.rstrip("0").rstrip(".") + "%"
