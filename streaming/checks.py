"""System checks for the ``STREAMING`` setting, with stable ids.

* ``streaming.E001``: a provider's ``BACKEND`` cannot be imported or is not a Provider.
* ``streaming.E002``: a ``MODELS`` entry is not of the form ``provider:model``.
* ``streaming.E003``: a model names a provider that ``PROVIDERS`` does not configure.
* ``streaming.W004``: a provider is enabled but the environment variable with its key is not set
  (unless it needs none: an OpenAI-compatible local server with ``require_api_key: False``).
* ``streaming.E005``: ``DEFAULT_MODEL`` or a ``FALLBACKS`` entry is not in ``MODELS``.
* ``streaming.E006``: ``MONTHLY_BUDGET_USD`` is not an amount >= 0.
* ``streaming.E007``: ``MAX_CONCURRENT_REPLIES`` or ``REPLIES_PER_MINUTE`` is not a whole number >= 1
  or None.
* ``streaming.E008``: ``TOOLS`` is malformed, or a tool it lists cannot be imported or described (its
  schema cannot be made from its signature), or it names a model that ``MODELS`` does not list.
* ``streaming.E009``: ``MAX_STEPS`` or ``TOOL_OUTPUT_MAX_CHARS`` is not a whole number >= 1, or
  ``TOOL_TIMEOUT`` is not a number of seconds above 0.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from streaming.conf import app_settings, parse_model_entry
from streaming.providers.base import Provider
from streaming.tools.registry import load


@register()
def check_streaming_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    providers = app_settings.providers
    for name, config in providers.items():
        messages += _check_provider(name, config)
    known: set[str] = set()
    for entry in app_settings._get("MODELS"):
        try:
            spec = parse_model_entry(entry)
        except ValueError as exc:
            messages.append(
                Error(
                    f"STREAMING['MODELS'] entry {entry!r} is malformed: {exc}.",
                    hint="Write model ids as 'provider:model', e.g. 'openai:gpt-4.1-mini'.",
                    id="streaming.E002",
                )
            )
            continue
        known.add(spec.id)
        if spec.provider not in providers:
            messages.append(
                Error(
                    f"Model {spec.id!r} names the provider {spec.provider!r}, which is not configured.",
                    hint="Add it to STREAMING['PROVIDERS'] or remove the model.",
                    id="streaming.E003",
                )
            )
    messages += _check_references(known)
    messages += _check_budget()
    messages += _check_limits()
    messages += _check_tools(known)
    messages += _check_tool_limits()
    return messages


def _check_tools(known: set[str]) -> list[CheckMessage]:
    try:
        configured = app_settings.tools
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint='For example ["myapp.tools.search_orders"].', id="streaming.E008")]
    messages: list[CheckMessage] = []
    for model_id, paths in configured.items():
        if model_id != "*" and model_id not in known:
            messages.append(
                Error(
                    f"STREAMING['TOOLS'] names the model {model_id!r}, which is not in STREAMING['MODELS'].",
                    hint="Use a model id of MODELS, or '*' for every model.",
                    id="streaming.E008",
                )
            )
        for path in paths:
            try:
                load(path)
            except Exception as exc:
                messages.append(
                    Error(
                        f"STREAMING['TOOLS'] lists {path!r}, which cannot be used as a tool: {exc}",
                        hint="Name a typed function (or a @streaming.tool) by its dotted path.",
                        id="streaming.E008",
                    )
                )
    return messages


def _check_tool_limits() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for name in ("max_steps", "tool_timeout", "tool_output_max_chars"):
        try:
            getattr(app_settings, name)
        except ImproperlyConfigured as exc:
            messages.append(Error(str(exc), hint="See the Tools documentation.", id="streaming.E009"))
    return messages


def _check_budget() -> list[CheckMessage]:
    try:
        app_settings.monthly_budget_usd  # noqa: B018 (parsing it is the check)
    except ImproperlyConfigured as exc:
        hint = "Use a number of dollars such as '25' or '7.50', or None for no budget."
        return [Error(str(exc), hint=hint, id="streaming.E006")]
    return []


def _check_limits() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for name in ("max_concurrent_replies", "replies_per_minute"):
        try:
            getattr(app_settings, name)
        except ImproperlyConfigured as exc:
            hint = "Use a whole number such as 4, or None for no limit."
            messages.append(Error(str(exc), hint=hint, id="streaming.E007"))
    return messages


def _check_provider(name: str, config: Any) -> list[CheckMessage]:
    backend = config.get("BACKEND") if isinstance(config, dict) else None
    try:
        cls = import_string(backend) if isinstance(backend, str) else None
    except ImportError as exc:
        cls, reason = None, str(exc)
    else:
        reason = "it is not a subclass of streaming.providers.base.Provider"
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        return [
            Error(
                f"STREAMING['PROVIDERS'][{name!r}]['BACKEND'] = {backend!r} cannot be used: {reason}.",
                hint="Use a dotted path such as 'streaming.providers.openai.OpenAIProvider'.",
                id="streaming.E001",
            )
        ]
    provider = cls(name, config.get("OPTIONS") or {})
    variables = provider.key_variables()
    if provider.needs_api_key() and provider.api_key() is None:
        return [
            Warning(
                f"The provider {name!r} is enabled but no API key is set.",
                hint=f"Set the environment variable {' or '.join(variables)}.",
                id="streaming.W004",
            )
        ]
    return []


def _check_references(known: set[str]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    default = app_settings._get("DEFAULT_MODEL")
    referenced = [("DEFAULT_MODEL", default)] if default else []
    for source, chain in app_settings.fallbacks.items():
        referenced += [(f"FALLBACKS[{source!r}]", model_id) for model_id in [source, *chain]]
    for where, model_id in referenced:
        if model_id not in known:
            messages.append(
                Error(
                    f"STREAMING[{where}] names {model_id!r}, which is not in STREAMING['MODELS'].",
                    hint="Only allowlisted models can be called.",
                    id="streaming.E005",
                )
            )
    return messages
