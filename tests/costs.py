"""Helpers for the cost tests: scripted providers under real vendor names, so real model names get priced
by genai-prices without calling anybody, and a quick way to store usage rows."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from streaming.costs import price_call
from streaming.events import Usage as Counts
from streaming.models import Usage

SCRIPTED = {"BACKEND": "streaming.providers.scripted.ScriptedProvider"}

PRICED_MODELS = [
    "openai:gpt-4.1-mini",
    "openai:o3",
    "anthropic:claude-haiku-4-5",
    "gemini:gemini-2.5-flash",
    "gemini:gemini-2.5-pro",
    "openai:no-such-model",
]


def priced_streaming(**extra: Any) -> dict[str, Any]:
    """The test suite's STREAMING setting plus scripted ``openai``, ``anthropic`` and ``gemini`` providers."""
    base: dict[str, Any] = settings.STREAMING
    return {
        **base,
        "PROVIDERS": {**base["PROVIDERS"], "openai": SCRIPTED, "anthropic": SCRIPTED, "gemini": SCRIPTED},
        "MODELS": [*base["MODELS"], *PRICED_MODELS],
        **extra,
    }


def usage_row(
    user: Any,
    provider: str = "openai",
    model: str = "gpt-4.1-mini",
    *,
    at: datetime | None = None,
    priced: bool = True,
    **counts: Any,
) -> Usage:
    """A stored usage row priced as ``save_reply`` would price it (or left unpriced)."""
    at = at or timezone.now()
    tokens = Counts(**{"input_tokens": 1000, "output_tokens": 100, **counts})
    fields = price_call(tokens, provider, model, at).as_fields() if priced else {}
    return Usage.objects.create(
        user=user, provider=provider, model=model, created_at=at, priced_at=at, **tokens.as_dict(), **fields
    )


def d(value: str) -> Decimal:
    return Decimal(value)
