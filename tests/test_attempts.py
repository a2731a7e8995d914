"""The retry and fallback plan of a reply before its first token: exponential backoff, doubling up to
``RETRY_MAX_DELAY``; ``Retry-After`` honoured when longer than the backoff, and a longer one than the
cap moves on to the next model; errors that are not transient move on at once; and a reply makes at
most ``RETRY_ATTEMPTS * (1 + fallbacks)`` calls."""

from __future__ import annotations

from typing import Any

import pytest

from streaming.attempts import AttemptPlan
from streaming.conf import app_settings
from streaming.exceptions import (
    Overloaded,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    RateLimited,
    UpstreamError,
)


def plan(settings: Any, *, fallbacks: list[str] | None = None, **retry: Any) -> AttemptPlan:
    settings.STREAMING = {
        **settings.STREAMING,
        "FALLBACKS": {"scripted:model-a": fallbacks or []},
        **retry,
    }
    spec = app_settings.get_model("scripted:model-a")
    assert spec is not None
    return AttemptPlan(spec)


def delays(attempts: AttemptPlan, error: ProviderError, calls: int) -> list[float | None]:
    return [attempts.next_delay(error) for _ in range(calls)]


def test_the_backoff_doubles_from_the_base_delay(settings: Any) -> None:
    attempts = plan(settings, RETRY_ATTEMPTS=5, RETRY_BASE_DELAY=0.5, RETRY_MAX_DELAY=8)
    assert delays(attempts, Overloaded(), 4) == [0.5, 1.0, 2.0, 4.0]
    assert attempts.next_delay(Overloaded()) is None  # five calls made, and no fallback


def test_the_backoff_stops_growing_at_the_max_delay(settings: Any) -> None:
    attempts = plan(settings, RETRY_ATTEMPTS=6, RETRY_BASE_DELAY=1, RETRY_MAX_DELAY=3)
    assert delays(attempts, UpstreamError(), 5) == [1.0, 2.0, 3.0, 3.0, 3.0]


def test_retry_after_is_honoured_when_longer_than_the_backoff(settings: Any) -> None:
    attempts = plan(settings, RETRY_ATTEMPTS=3, RETRY_BASE_DELAY=0.5, RETRY_MAX_DELAY=8)
    assert attempts.next_delay(RateLimited(retry_after=2.5)) == 2.5
    assert attempts.next_delay(RateLimited(retry_after=0.1)) == 1.0  # shorter: the backoff wins
    assert attempts.current.id == "scripted:model-a"


def test_a_retry_after_above_the_cap_moves_on_to_the_next_model(settings: Any) -> None:
    attempts = plan(settings, fallbacks=["backup:model-b"], RETRY_BASE_DELAY=0.5, RETRY_MAX_DELAY=8)
    assert attempts.next_delay(RateLimited(retry_after=30)) == 0.0  # at once, to the fallback
    assert attempts.current.id == "backup:model-b"
    assert attempts.next_delay(RateLimited(retry_after=30)) is None  # the chain is spent


@pytest.mark.parametrize(
    "error",
    [ProviderAuthError(), RateLimited("Quota used up.", retryable=False)],
    ids=["auth", "quota"],
)
def test_an_error_that_is_not_transient_moves_on_at_once(settings: Any, error: ProviderError) -> None:
    attempts = plan(settings, fallbacks=["backup:model-b"], RETRY_ATTEMPTS=3)
    assert attempts.next_delay(error) == 0.0
    assert attempts.current.id == "backup:model-b"
    assert attempts.next_delay(error) is None


def test_each_model_gets_its_own_attempts(settings: Any) -> None:
    attempts = plan(
        settings, fallbacks=["backup:model-b"], RETRY_ATTEMPTS=2, RETRY_BASE_DELAY=0.5, RETRY_MAX_DELAY=8
    )
    assert attempts.next_delay(Overloaded()) == 0.5
    assert attempts.next_delay(Overloaded()) == 0.0  # model-a had its 2 calls: on to model-b
    assert attempts.current.id == "backup:model-b"
    assert attempts.next_delay(Overloaded()) == 0.5  # the backoff starts again for it


@pytest.mark.parametrize(("retries", "fallbacks"), [(1, 0), (3, 0), (3, 2), (2, 1)])
def test_a_reply_makes_at_most_attempts_times_one_plus_fallbacks_calls(
    settings: Any, retries: int, fallbacks: int
) -> None:
    chain = ["backup:model-b", "demo:echo"][:fallbacks]
    attempts = plan(settings, fallbacks=chain, RETRY_ATTEMPTS=retries, RETRY_BASE_DELAY=0, RETRY_MAX_DELAY=0)
    calls = 1
    while attempts.next_delay(ProviderConnectionError()) is not None:
        calls += 1
        assert calls <= 100
    assert calls == retries * (1 + fallbacks)


def test_a_fallback_without_a_configured_provider_is_skipped(settings: Any) -> None:
    settings.STREAMING = {
        **settings.STREAMING,
        "MODELS": [*settings.STREAMING["MODELS"], "gone:model-x"],
        "FALLBACKS": {"scripted:model-a": ["gone:model-x", "backup:model-b"]},
    }
    spec = app_settings.get_model("scripted:model-a")
    assert spec is not None
    assert [c.id for c in AttemptPlan(spec).candidates] == ["scripted:model-a", "backup:model-b"]
