"""Pricing applied to stored usage: the override in force, free providers, and the re-price action.

``streaming.pricing`` computes costs without I/O; this module feeds it from the database and the
``STREAMING`` setting, with a bounded number of queries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.module_loading import import_string

from streaming.conf import app_settings
from streaming.models import PriceOverride, Usage
from streaming.pricing import Override, Price, Rates, TokenCounts, price_usage

REPRICE_BATCH = 1000


def override_of(row: PriceOverride) -> Override:
    return Override(
        id=row.pk,
        rates=Rates(
            input=row.input_per_mtok,
            output=row.output_per_mtok,
            cache_read=row.cache_read_per_mtok,
            cache_write=row.cache_write_per_mtok,
        ),
    )


def provider_is_free(provider: str) -> bool:
    """Whether the configured backend of ``provider`` is free (``Provider.free``, e.g. the demo)."""
    config = app_settings.providers.get(provider)
    if not isinstance(config, dict):
        return False
    try:
        backend = import_string(config["BACKEND"])
    except (ImportError, KeyError):
        return False
    return bool(getattr(backend, "free", False))


def pricing_provider_id(provider: str) -> str:
    """The genai-prices provider id for a configured provider: its ``PRICING_PROVIDER`` or its name.

    genai-prices matches ids loosely (``gemini`` finds ``google``), so the name is usually enough;
    an OpenAI-compatible endpoint configured under another name sets ``"PRICING_PROVIDER": "groq"``.
    """
    config = app_settings.providers.get(provider)
    configured = config.get("PRICING_PROVIDER") if isinstance(config, dict) else None
    return str(configured or provider)


def price_call(counts: TokenCounts, provider: str, model: str, at: datetime) -> Price:
    """Price one provider call at ``at``: one query (the override in force)."""
    found = PriceOverride.objects.in_force(provider, model, at)
    return price_usage(
        counts,
        provider=pricing_provider_id(provider),
        model=model,
        at=at,
        override=None if found is None else override_of(found),
        free=provider_is_free(provider),
    )


class OverrideBook:
    """The overrides of some ``(provider, model)`` pairs, loaded in one query, chosen by time in memory."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.by_pair: dict[tuple[str, str], list[PriceOverride]] = defaultdict(list)
        condition = Q()
        for provider, model in set(pairs):
            condition |= Q(provider=provider, model=model)
        if condition:
            for row in PriceOverride.objects.filter(condition).order_by("-valid_from", "-id"):
                self.by_pair[(row.provider, row.model)].append(row)

    def in_force(self, provider: str, model: str, at: datetime) -> Override | None:
        for row in self.by_pair.get((provider, model), ()):
            if row.valid_from <= at:
                return override_of(row)
        return None

    def price(self, counts: TokenCounts, provider: str, model: str, at: datetime) -> Price:
        return price_usage(
            counts,
            provider=pricing_provider_id(provider),
            model=model,
            at=at,
            override=self.in_force(provider, model, at),
            free=provider_is_free(provider),
        )


def reprice(queryset: QuerySet[Usage]) -> int:
    """Recompute the cost snapshot of the given rows with today's overrides and library.

    Rows are read and written in batches, so a large selection never sits in memory at once;
    each batch costs three queries (rows, overrides, one bulk UPDATE).
    """
    fields = ["price_source", "unit_prices", "input_cost", "output_cost", "total_cost", "priced_at"]
    count = 0
    last = 0
    while True:
        batch = list(queryset.filter(pk__gt=last).order_by("pk")[:REPRICE_BATCH])
        if not batch:
            return count
        book = OverrideBook((row.provider, row.model) for row in batch)
        now = timezone.now()
        for row in batch:
            _apply(row, book.price(row, row.provider, row.model, row.created_at), now)
        with transaction.atomic():
            Usage.objects.bulk_update(batch, fields)
        count += len(batch)
        last = batch[-1].pk


def _apply(row: Usage, price: Price, now: datetime) -> None:
    values: dict[str, Any] = price.as_fields()
    for name, value in values.items():
        setattr(row, name, value)
    row.priced_at = now
