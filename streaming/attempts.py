"""Retries and fallbacks before the first token: which model to call next, and after what delay.

Each model in the chain gets up to ``RETRY_ATTEMPTS`` calls for transient errors (429, 5xx,
overloaded, connection), with exponential backoff that honours ``Retry-After``; any failure that is
not retried moves on to the next model of ``FALLBACKS``. So a reply makes at most
``RETRY_ATTEMPTS * (1 + len(fallbacks))`` provider calls. After the first token nothing is retried.
"""

from __future__ import annotations

from streaming.conf import ModelSpec, app_settings
from streaming.exceptions import ProviderError


class AttemptPlan:
    def __init__(self, spec: ModelSpec) -> None:
        chain = [app_settings.get_model(model_id) for model_id in app_settings.fallbacks.get(spec.id, [])]
        configured = app_settings.providers
        self.candidates = [spec, *(c for c in chain if c is not None and c.provider in configured)]
        self.index = 0
        self.tries = 0
        self.attempts = int(app_settings.retry_attempts)
        self.base_delay = float(app_settings.retry_base_delay)
        self.max_delay = float(app_settings.retry_max_delay)

    @property
    def current(self) -> ModelSpec:
        return self.candidates[self.index]

    def next_delay(self, error: ProviderError) -> float | None:
        """After ``error``: seconds to wait before the next call, or None when the chain is spent."""
        self.tries += 1
        if error.retryable and self.tries < self.attempts:
            delay = min(self.max_delay, self.base_delay * 2.0 ** (self.tries - 1))
            if error.retry_after is None:
                return delay
            if error.retry_after <= self.max_delay:
                return max(delay, error.retry_after)
            # The provider asks for a longer wait than we allow: try the next model instead.
        self.index += 1
        self.tries = 0
        if self.index >= len(self.candidates):
            return None
        return 0.0
