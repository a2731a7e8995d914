"""The cost of one provider call: a staff price override when one is in force, else genai-prices.

Pure: no database, no network. The caller looks the override up (``streaming.costs``) and passes it in.

Token counts have the normalized meaning (``streaming.events.Usage``), which is also genai-prices':
``input_tokens`` is the total input, cache reads and writes included, and ``output_tokens`` the total
output, reasoning included. genai-prices subtracts the cache and reasoning parts itself, so the counts
are passed through unchanged.

Only genai-prices' bundled data is used (the version pinned in ``pyproject.toml``): its background
updater is never started, so a price snapshot names the exact data it came from.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from importlib.metadata import version
from typing import Any, Protocol

logger = logging.getLogger(__name__)

COST_DECIMAL_PLACES = 10  # stored and sent with this many places: a ten-billionth of a dollar
QUANTUM = Decimal(1).scaleb(-COST_DECIMAL_PLACES)  # 0.0000000001 USD
MILLION = Decimal(1_000_000)
UNPRICED = "unpriced"
FREE = "free"
OVERRIDE_PREFIX = "override:"

#: The genai-prices price keys that this app's usage can be charged for, in display order.
PRICE_KEYS = (
    "input_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "output_mtok",
    "output_reasoning_mtok",
    "requests_kcount",
)


class TokenCounts(Protocol):
    """Normalized usage: a ``streaming.events.Usage`` or a ``streaming.models.Usage`` row."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int


@dataclass(frozen=True, slots=True)
class Rates:
    """Prices in USD per million tokens. A missing cache price charges those tokens as plain input."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None

    def as_unit_prices(self) -> dict[str, str]:
        prices = {
            "input_mtok": self.input,
            "cache_read_mtok": self.cache_read,
            "cache_write_mtok": self.cache_write,
            "output_mtok": self.output,
        }
        return {key: decimal_string(value) for key, value in prices.items() if value is not None}


@dataclass(frozen=True, slots=True)
class Override:
    """An override in force: its id (for ``price_source``) and its rates."""

    id: int
    rates: Rates


@dataclass(frozen=True, slots=True)
class Price:
    """A cost snapshot, as stored on a ``Usage`` row. Costs are None when the model has no known price."""

    source: str
    unit_prices: dict[str, str] = field(default_factory=dict)
    input_cost: Decimal | None = None
    output_cost: Decimal | None = None
    total_cost: Decimal | None = None

    @property
    def priced(self) -> bool:
        return self.total_cost is not None

    def as_fields(self) -> dict[str, Any]:
        return {
            "price_source": self.source,
            "unit_prices": self.unit_prices,
            "input_cost": self.input_cost,
            "output_cost": self.output_cost,
            "total_cost": self.total_cost,
        }


def quantize(amount: Decimal) -> Decimal:
    return amount.quantize(QUANTUM, rounding=ROUND_HALF_UP)


def decimal_string(amount: Decimal) -> str:
    """A plain (never scientific) decimal string, as stored in ``unit_prices``."""
    text = format(amount.normalize(), "f")
    return text if text != "-0" else "0"


def cost_string(amount: Decimal | None) -> str | None:
    """The API's form of a cost: a fixed-precision decimal string, or None when unpriced."""
    return None if amount is None else format(quantize(amount), "f")


@functools.cache
def library_source() -> str:
    return f"genai-prices=={version('genai-prices')}"


# The (provider, model) pairs a price data snapshot does not know. genai-prices remembers the models
# it found, but looks an unknown one up again each time, through every model of the provider (a
# local server's model, a fine-tune): about half a millisecond per reply, for the same answer.
_unknown: tuple[Any, set[tuple[str, str]]] = (None, set())  # (the snapshot they are unknown to, pairs)


def _unknown_pairs(snapshot: Any) -> set[tuple[str, str]]:
    global _unknown
    if _unknown[0] is not snapshot:
        _unknown = (snapshot, set())
    return _unknown[1]


def price_usage(
    counts: TokenCounts,
    *,
    provider: str,
    model: str,
    at: datetime,
    override: Override | None = None,
    free: bool = False,
) -> Price:
    """The cost of one call: an override first, then a free provider, then genai-prices.

    ``provider`` is the genai-prices provider id (``openai``, ``anthropic``, ``google``/``gemini``...)
    and ``model`` the vendor's model name; ``at`` is the time of the request, which selects dated
    prices in the library (overrides are chosen by the caller for that time).
    """
    if override is not None:
        return price_with_rates(counts, override.rates, source=f"{OVERRIDE_PREFIX}{override.id}")
    if free:
        return Price(FREE, {}, Decimal(0), Decimal(0), Decimal(0))
    return library_price(counts, provider=provider, model=model, at=at)


def price_with_rates(counts: TokenCounts, rates: Rates, *, source: str) -> Price:
    cache_read = counts.cached_input_tokens if rates.cache_read is not None else 0
    cache_write = counts.cache_write_tokens if rates.cache_write is not None else 0
    plain_input = max(0, counts.input_tokens - cache_read - cache_write)
    input_cost = plain_input * rates.input
    if rates.cache_read is not None:
        input_cost += cache_read * rates.cache_read
    if rates.cache_write is not None:
        input_cost += cache_write * rates.cache_write
    input_cost = quantize(input_cost / MILLION)
    output_cost = quantize(counts.output_tokens * rates.output / MILLION)
    return Price(source, rates.as_unit_prices(), input_cost, output_cost, input_cost + output_cost)


def library_price(counts: TokenCounts, *, provider: str, model: str, at: datetime) -> Price:
    """Price with genai-prices' bundled data; ``unpriced`` when it does not know the provider or model."""
    import genai_prices
    from genai_prices import data_snapshot

    usage = genai_prices.Usage(
        input_tokens=counts.input_tokens,
        cache_read_tokens=counts.cached_input_tokens,
        cache_write_tokens=counts.cache_write_tokens,
        output_tokens=counts.output_tokens,
        output_reasoning_tokens=counts.reasoning_tokens,
    )
    unknown = _unknown_pairs(data_snapshot.get_snapshot())
    if (provider, model) in unknown:
        return Price(UNPRICED)
    try:
        calc = genai_prices.calc_price(usage, model, provider_id=provider, genai_request_timestamp=at)
    except LookupError:
        unknown.add((provider, model))
        return Price(UNPRICED)
    except ValueError as exc:  # inconsistent counts, e.g. more cache reads than input tokens
        logger.warning("streaming: cannot price %s:%s usage: %s", provider, model, exc)
        return Price(UNPRICED)
    source = library_source()
    if calc.auto_update_timestamp is not None:  # the host project runs genai-prices' updater itself
        source += f"+data@{calc.auto_update_timestamp:%Y-%m-%dT%H:%M}"
    return Price(
        source=source,
        unit_prices=_unit_prices(calc.model_price, counts.input_tokens),
        input_cost=quantize(calc.input_price),
        output_cost=quantize(calc.output_price),
        total_cost=quantize(calc.total_price),
    )


def _unit_prices(model_price: Any, input_tokens: int) -> dict[str, str]:
    """The prices that applied to this request: for a tiered price, the tier its input size falls in."""
    from genai_prices.types import TieredPrices

    prices: dict[str, str] = {}
    for key in PRICE_KEYS:
        value = getattr(model_price, key, None)
        if isinstance(value, TieredPrices):
            applied = value.base
            for tier in reversed(value.tiers):  # the same threshold rule as genai-prices' calc_unit_price
                if input_tokens > tier.start:
                    applied = tier.price
                    break
            value = applied
        if isinstance(value, Decimal):
            prices[key] = decimal_string(value)
    return prices
