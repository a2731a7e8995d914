"""The ``STREAMING`` setting, read through one typed object with its defaults in one place.

Every attribute is read at access time, so ``override_settings(STREAMING=...)`` works in tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    "PROVIDERS": {"demo": {"BACKEND": "streaming.providers.demo.DemoProvider", "OPTIONS": {}}},
    "MODELS": ["demo:echo"],
    "DEFAULT_MODEL": None,
    "FALLBACKS": {},
    "SYSTEM_PROMPT": "",
    "HISTORY_MESSAGES": 40,
    "MAX_MESSAGE_CHARS": 32_000,
    "HEARTBEAT_SECONDS": 15.0,
    "FIRST_TOKEN_TIMEOUT": 60.0,
    "IDLE_TIMEOUT": 30.0,
    # A reply whose lease was not renewed this long is taken for one whose process died (the lease is
    # renewed every quarter of it, for all of a process's replies in one UPDATE).
    "STALE_AFTER_SECONDS": 10.0,
    # How long a reply whose client went away goes on, waiting for a reader to attach again; 0 stops
    # it at once, None lets it always finish.
    "DISCONNECT_GRACE_SECONDS": 30.0,
    # Where a streaming reply's chunks are kept for readers that attach (streaming.replylog).
    "REPLY_LOG": {"BACKEND": "streaming.replylog.memory.MemoryReplyLog", "OPTIONS": {}},
    "STOP_POLL_SECONDS": 0.25,
    "RETRY_ATTEMPTS": 3,
    "RETRY_BASE_DELAY": 0.5,
    "RETRY_MAX_DELAY": 8.0,
    # The cache that carries stop requests and the per-user limits: shared by all processes in a
    # deployment (Redis, files), so that both hold across them.
    "CACHE_ALIAS": "default",
    # The threads that run the app's database work and keep their connections (streaming.database).
    "DATABASE_THREADS": 4,
    "DATABASE_IDLE_SECONDS": 10.0,
    # USD per user per calendar month; None is unlimited. A UserBudget row in the admin overrides it.
    "MONTHLY_BUDGET_USD": None,
    # Fair use, per user: replies streaming at once, and replies started in a clock minute (None lifts
    # either); past one, a 429 with Retry-After (streaming.limits).
    "MAX_CONCURRENT_REPLIES": 4,
    "REPLIES_PER_MINUTE": 20,
    # Tools the model may call (streaming.tools): dotted paths, for every model (a list) or per model
    # (a dict of model id, or "*" for all, to a list).
    "TOOLS": [],
    # Model calls per reply: a reply whose model keeps calling tools gets its last call without them.
    "MAX_STEPS": 5,
    # Seconds a tool call may run (a tool's own ``timeout`` wins), and the longest output it may give
    # back (characters of its JSON): past either, the model is told the call failed.
    "TOOL_TIMEOUT": 30.0,
    "TOOL_OUTPUT_MAX_CHARS": 20_000,
}


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One entry of the model allowlist."""

    id: str
    provider: str
    model: str
    label: str
    reasoning: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "model": self.model,
            "label": self.label,
            "reasoning": self.reasoning,
        }


def split_model_id(model_id: str) -> tuple[str, str]:
    """``"openai:gpt-4.1-mini"`` -> ``("openai", "gpt-4.1-mini")``; ValueError when malformed."""
    provider, sep, model = model_id.partition(":")
    if not sep or not provider or not model or any(c.isspace() for c in model_id):
        raise ValueError(f"{model_id!r} is not of the form 'provider:model'")
    return provider, model


def parse_model_entry(entry: str | dict[str, Any]) -> ModelSpec:
    """A ``MODELS`` entry is a ``"provider:model"`` string or a dict with ``id``, ``label``, ``reasoning``."""
    data = {"id": entry} if isinstance(entry, str) else dict(entry)
    model_id = data.get("id")
    if not isinstance(model_id, str):
        raise ValueError(f"model entry {entry!r} has no 'id' string")
    provider, model = split_model_id(model_id)
    return ModelSpec(
        id=model_id,
        provider=provider,
        model=model,
        label=str(data.get("label") or model),
        reasoning=bool(data.get("reasoning", False)),
    )


def model_spec(model_id: str) -> ModelSpec:
    """The allowlisted entry of ``model_id``, or, for a model no longer listed (a stored reply's), one
    made from its id."""
    spec = app_settings.get_model(model_id)
    if spec is not None:
        return spec
    provider, _, model = model_id.partition(":") if ":" in model_id else ("", "", model_id)
    return ModelSpec(id=model_id, provider=provider, model=model, label=model, reasoning=False)


class StreamingSettings:
    """Typed access to ``settings.STREAMING``; missing keys fall back to ``DEFAULTS``."""

    def _get(self, key: str) -> Any:
        user = getattr(settings, "STREAMING", None) or {}
        return user.get(key, DEFAULTS[key])

    @property
    def providers(self) -> dict[str, dict[str, Any]]:
        return dict(self._get("PROVIDERS"))

    @property
    def models(self) -> list[ModelSpec]:
        """The allowlist. Malformed entries are skipped here and reported by the system checks."""
        specs = []
        for entry in self._get("MODELS"):
            try:
                specs.append(parse_model_entry(entry))
            except ValueError:
                continue
        return specs

    def get_model(self, model_id: str) -> ModelSpec | None:
        for spec in self.models:
            if spec.id == model_id:
                return spec
        return None

    @property
    def default_model(self) -> str | None:
        configured = self._get("DEFAULT_MODEL")
        if configured:
            return str(configured)
        models = self.models
        return models[0].id if models else None

    @property
    def fallbacks(self) -> dict[str, list[str]]:
        return {key: list(value) for key, value in self._get("FALLBACKS").items()}

    @property
    def system_prompt(self) -> str:
        return str(self._get("SYSTEM_PROMPT"))

    @property
    def history_messages(self) -> int:
        return int(self._get("HISTORY_MESSAGES"))

    @property
    def max_message_chars(self) -> int:
        return int(self._get("MAX_MESSAGE_CHARS"))

    @property
    def heartbeat_seconds(self) -> float:
        return float(self._get("HEARTBEAT_SECONDS"))

    @property
    def first_token_timeout(self) -> float:
        return float(self._get("FIRST_TOKEN_TIMEOUT"))

    @property
    def idle_timeout(self) -> float:
        return float(self._get("IDLE_TIMEOUT"))

    @property
    def stale_after_seconds(self) -> float:
        return float(self._get("STALE_AFTER_SECONDS"))

    @property
    def disconnect_grace_seconds(self) -> float | None:
        value = self._get("DISCONNECT_GRACE_SECONDS")
        return None if value is None else max(0.0, float(value))

    @property
    def reply_log(self) -> dict[str, Any]:
        return dict(self._get("REPLY_LOG"))

    @property
    def stop_poll_seconds(self) -> float:
        return float(self._get("STOP_POLL_SECONDS"))

    @property
    def retry_attempts(self) -> int:
        return max(1, int(self._get("RETRY_ATTEMPTS")))

    @property
    def retry_base_delay(self) -> float:
        return float(self._get("RETRY_BASE_DELAY"))

    @property
    def retry_max_delay(self) -> float:
        return float(self._get("RETRY_MAX_DELAY"))

    @property
    def cache_alias(self) -> str:
        return str(self._get("CACHE_ALIAS"))

    @property
    def database_threads(self) -> int:
        return max(1, int(self._get("DATABASE_THREADS")))

    @property
    def database_idle_seconds(self) -> float:
        return float(self._get("DATABASE_IDLE_SECONDS"))

    @property
    def monthly_budget_usd(self) -> Decimal | None:
        value = self._get("MONTHLY_BUDGET_USD")
        if value is None or value == "":
            return None
        try:
            budget = Decimal(str(value).strip())
        except InvalidOperation:
            budget = Decimal("NaN")
        if not budget.is_finite() or budget < 0:
            raise ImproperlyConfigured(f"STREAMING['MONTHLY_BUDGET_USD'] = {value!r} is not an amount >= 0.")
        return budget

    @property
    def max_concurrent_replies(self) -> int | None:
        return _limit("MAX_CONCURRENT_REPLIES", self._get("MAX_CONCURRENT_REPLIES"))

    @property
    def replies_per_minute(self) -> int | None:
        return _limit("REPLIES_PER_MINUTE", self._get("REPLIES_PER_MINUTE"))

    @property
    def tools(self) -> dict[str, list[str]]:
        """``TOOLS`` as model id (``"*"``: every model) to dotted paths; ImproperlyConfigured if malformed."""
        value = self._get("TOOLS")
        if isinstance(value, (list, tuple)):
            value = {"*": value}
        if not isinstance(value, dict) or not all(
            isinstance(paths, (list, tuple)) and all(isinstance(p, str) for p in paths)
            for paths in value.values()
        ):
            raise ImproperlyConfigured(
                "STREAMING['TOOLS'] must be a list of dotted paths, "
                "or a dict of model id (or '*') to such lists."
            )
        return {str(model): list(paths) for model, paths in value.items()}

    @property
    def max_steps(self) -> int:
        limit = _limit("MAX_STEPS", self._get("MAX_STEPS"))
        if limit is None:
            raise ImproperlyConfigured(
                "STREAMING['MAX_STEPS'] = None: a reply needs at least one model call."
            )
        return limit

    @property
    def tool_timeout(self) -> float:
        return _positive("TOOL_TIMEOUT", self._get("TOOL_TIMEOUT"))

    @property
    def tool_output_max_chars(self) -> int | None:
        return _limit("TOOL_OUTPUT_MAX_CHARS", self._get("TOOL_OUTPUT_MAX_CHARS"))


def _limit(key: str, value: Any) -> int | None:
    """A per-user limit: a whole number >= 1, or None for none."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ImproperlyConfigured(f"STREAMING[{key!r}] = {value!r} is not a whole number >= 1 (or None).")


def _positive(key: str, value: Any) -> float:
    """A number of seconds above 0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise ImproperlyConfigured(f"STREAMING[{key!r}] = {value!r} is not a number of seconds above 0.")


app_settings = StreamingSettings()
