"""The provider registry: one instance per configured name, built from ``STREAMING["PROVIDERS"]``."""

from __future__ import annotations

from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from streaming.conf import app_settings
from streaming.providers.base import ChatMessage, ChatRequest, Provider

__all__ = ["ChatMessage", "ChatRequest", "Provider", "get_provider"]

_instances: dict[str, Provider] = {}


def get_provider(name: str) -> Provider:
    """The configured provider called ``name``; KeyError if there is none."""
    try:
        return _instances[name]
    except KeyError:
        pass
    config: dict[str, Any] = app_settings.providers[name]
    backend = import_string(config["BACKEND"])
    instance: Provider = backend(name, config.get("OPTIONS") or {})
    _instances[name] = instance
    return instance


@receiver(setting_changed)
def _forget_providers(*, setting: str, **kwargs: Any) -> None:
    if setting == "STREAMING":
        _instances.clear()
