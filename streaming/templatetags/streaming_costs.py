"""Template filters for costs and token counts in the admin pages."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def usd(amount: Decimal | None, places: int = 6) -> str:
    """``$1,234.567890``; an empty sum (no priced rows) is ``$0``, never "unpriced"."""
    if amount is None:
        amount = Decimal(0)
    return f"${amount:,.{int(places)}f}"


@register.filter
def tokens(count: int | None) -> str:
    return f"{count or 0:,}"
